"""The report as a file: written to CSV, XLSX or JSONL, formula-safe and atomically (`formats`,
xlsxwriter here only), and read back (`reading`)."""
