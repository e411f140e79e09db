"""The report as a file: written to CSV, XLSX or JSONL, formula-safe and atomically (`formats`;
the XLSX sheet in `xlsx`, xlsxwriter there only), and read back (`reading`)."""
