"""EN 16931 e-invoices: one semantic model, readers and writers for CII and UBL, the official
Schematron rules (see the modules)."""
