"""The header-field rules behind `idp_assets.logic.fields.extract_fields`, one module per kind of field.

* `candidates` - a candidate value (`Candidate`) and the text helpers every rule uses
* `labels` - the label vocabulary (`logic/data/invoice_labels.json`: per field and language, with source)
  as regexes, payment terms ('zahlbar innerhalb von 14 Tagen'), line-item columns (BT-126 ... BT-153)
* `confidence` - the fitted confidence model (`logic/data/field_confidence.json`) and its fitting
* `ids` - invoice number, IBAN (with its checksum), VAT ID
* `dates` - invoice date (with OCR digit repair) and due date
* `amounts` - total, net total, tax total
* `parties` - supplier name (seller labels, sender line, legal forms, letterhead)
* `scoring` - OCR confidence of a value and the winner among candidates (noisy-or support)
* `checks` - e-invoice XML values, whether they are printed, and the validation findings

Pure functions over text: no Dagster, no resources.  Import `idp_assets.logic.fields`, not these.
"""
