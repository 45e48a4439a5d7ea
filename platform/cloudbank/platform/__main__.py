from cloudbank.platform.cli import entry

entry()
