// DOM helpers shared by the browser apps (platform/cloudbank/platform/web_common/dom.js).
export * from "../../common/dom.js";
