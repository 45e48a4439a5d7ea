// Narrow windows: a wide table is shown as one block per row (seat.css, max-width 760px), each
// cell captioned with its column's heading. The headings are copied onto the cells as
// `data-label` when the table is built, so the captions follow the UI's language.

/** Give every body cell of `table` its column heading as `data-label`; returns the table. */
export function labelColumns(table) {
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => { if (heads[i]) cell.dataset.label = heads[i]; });
  }
  return table;
}
