"""Label words that open a party block on an invoice, kept as data with their sources.

Sources (general vocabularies, not any particular document):

* EN 16931-1:2017 semantic model - business groups BG-4 Seller, BG-7 Buyer, BG-10 Payee,
  BG-13 Delivery information, and their German / French terms in the CEN/TS 16931-3 syntax
  bindings and the XRechnung / ZUGFeRD (FeRD) visualisation stylesheets' standard labels
  ("Verkäufer", "Käufer", "Lieferanschrift", "Vendeur", "Acheteur", "Adresse de livraison").
* German VAT Act (UStG §14 (4)) wording: "Leistungsempfänger", "leistender Unternehmer",
  "Umsatzsteuer-Identifikationsnummer", "Steuernummer".
* Insurance distribution (EU IDD 2016/97, German VVG §59): intermediary roles "Versicherungsvermittler",
  "Versicherungsmakler", "Vermittler", "Makler", "Agentur"; English "broker", "agent", "intermediary";
  French "courtier", "intermédiaire".
* Common English invoice labels (UBL 2.1 party role names: AccountingSupplierParty, AccountingCustomerParty,
  DeliveryParty): "Bill to", "Ship to", "Sold to", "Customer", "Supplier", "Vendor".

Each entry is a regular expression matched case-insensitively at the start of a line.
"""

SELLER_LABELS = [
    r"verk[äa]ufer", r"lieferant", r"rechnungssteller", r"leistender\s+unternehmer", r"absender",
    r"seller", r"supplier", r"vendor", r"issued\s+by", r"sold\s+by", r"from",
    r"vendeur", r"fournisseur", r"[ée]metteur", r"leverancier", r"verkoper",
]

BUYER_LABELS = [
    r"k[äa]ufer", r"rechnungsempf[äa]nger", r"leistungsempf[äa]nger", r"empf[äa]nger", r"kunde", r"rechnungsadresse",
    r"versicherungsnehmer",
    r"buyer", r"bill(?:ed)?\s+to", r"invoice\s+to", r"sold\s+to", r"customer", r"client", r"purchaser",
    r"acheteur", r"adresse\s+de\s+facturation", r"factur[ée]\s+[àa]", r"koper", r"factuuradres",
]

DELIVERY_LABELS = [
    r"lieferanschrift", r"lieferadresse", r"warenempf[äa]nger", r"lieferung\s+an",
    r"ship(?:ped)?\s+to", r"deliver(?:y)?\s+(?:to|address)", r"consignee",
    r"adresse\s+de\s+livraison", r"livr[ée]\s+[àa]", r"afleveradres",
]

INTERMEDIARY_LABELS = [
    r"(?:ihr(?:e)?\s+)?(?:versicherungs)?vermittler(?:in)?", r"(?:versicherungs)?makler(?:in)?", r"agentur",
    r"(?:insurance\s+)?broker", r"intermediary", r"(?:your\s+)?agent",
    r"courtier", r"interm[ée]diaire",
]

# an identifier label preceded/followed by one of these words belongs to the buyer ('N° TVA client',
# 'Ihre USt-IdNr.', 'Customer VAT No.', 'Kunden-USt-IdNr.')
BUYER_QUALIFIERS = [r"client", r"kunden?", r"ihre?[mn]?", r"your", r"customer", r"buyer", r"k[äa]ufers?", r"acheteur",
                    r"destinataire", r"empf[äa]ngers?"]

ID_LABELS = [r"ust\.?[- ]?id", r"umsatzsteuer", r"steuer[- ]?nr", r"steuernummer", r"vat", r"tva", r"btw", r"gst",
             r"sst", r"tax", r"uid", r"siren", r"siret", r"n[°o]\s*tva", r"iban", r"konto", r"account"]

# SEPA direct debit (EPC SEPA Core Direct Debit rulebook wording): the account debited is the buyer's
DEBIT_WORDS = [r"lastschrift", r"abgebucht", r"eingezogen", r"direct\s+debit", r"debited", r"pr[ée]l[eè]vement", r"d[ée]bit[ée]"]
