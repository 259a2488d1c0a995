""":class:`~.model.Invoice` -> OASIS UBL 2.1 ``Invoice`` (or ``CreditNote`` for credit-note type
codes), elements in UBL 2.1 schema order.  Unknown terms are left out, never invented."""

from __future__ import annotations

from lxml import etree

from .model import AllowanceCharge, Invoice, InvoiceLine, Party, Period, decimal, to_decimal

__all__ = ["NS_CAC", "NS_CBC", "ubl_element", "write_ubl"]

NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS_ROOT = {"Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
           "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"}
DEFAULT_SPEC = "urn:cen.eu:en16931:2017"


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS_CAC if prefix == 'cac' else NS_CBC}}}{local}"


def _el(parent, tag: str, value: str | None = None, **attrs):
    el = etree.SubElement(parent, _q(tag), {k: v for k, v in attrs.items() if v is not None})
    if value is not None:
        el.text = str(value)
    return el


def _opt(parent, tag: str, value: str | None, **attrs):
    return _el(parent, tag, value, **attrs) if value not in (None, "") else None


class _Writer:
    def __init__(self, inv: Invoice):
        self.inv = inv
        self.cur = inv.currency

    def money(self, parent, name: str, value: str | None, currency: str | None = None):
        return _opt(parent, name, value, currencyID=currency or self.cur)

    def address(self, parent, name: str, a) -> None:
        if a is None:
            return
        el = _el(parent, name)
        _opt(el, "cbc:StreetName", a.line1)
        _opt(el, "cbc:AdditionalStreetName", a.line2)
        _opt(el, "cbc:CityName", a.city)
        _opt(el, "cbc:PostalZone", a.postcode)
        _opt(el, "cbc:CountrySubentity", a.subdivision)
        if a.line3:
            _el(_el(el, "cac:AddressLine"), "cbc:Line", a.line3)
        if a.country:
            _el(_el(el, "cac:Country"), "cbc:IdentificationCode", a.country)

    def party(self, parent, p: Party, *, creditor_id: str | None = None) -> None:
        el = _el(parent, "cac:Party")
        if p.endpoint is not None:
            _el(el, "cbc:EndpointID", p.endpoint.value, schemeID=p.endpoint.scheme)
        for i in p.ids:
            _el(_el(el, "cac:PartyIdentification"), "cbc:ID", i.value, schemeID=i.scheme)
        if creditor_id:
            _el(_el(el, "cac:PartyIdentification"), "cbc:ID", creditor_id, schemeID="SEPA")
        if p.trading_name:
            _el(_el(el, "cac:PartyName"), "cbc:Name", p.trading_name)
        self.address(el, "cac:PostalAddress", p.address)
        for value, scheme in ((p.vat_id, "VAT"), (p.tax_number, "FC")):
            if value:
                pts = _el(el, "cac:PartyTaxScheme")
                _el(pts, "cbc:CompanyID", value)
                _el(_el(pts, "cac:TaxScheme"), "cbc:ID", scheme)
        if p.name or p.legal_id or p.legal_info:
            legal = _el(el, "cac:PartyLegalEntity")
            _opt(legal, "cbc:RegistrationName", p.name)
            if p.legal_id is not None:
                _el(legal, "cbc:CompanyID", p.legal_id.value, schemeID=p.legal_id.scheme)
            _opt(legal, "cbc:CompanyLegalForm", p.legal_info)
        c = p.contact
        if c is not None:
            contact = _el(el, "cac:Contact")
            _opt(contact, "cbc:Name", c.name)
            _opt(contact, "cbc:Telephone", c.phone)
            _opt(contact, "cbc:ElectronicMail", c.email)

    def period(self, parent, p: Period | None, code: str | None = None) -> None:
        if p is None and not code:
            return
        el = _el(parent, "cac:InvoicePeriod")
        if p is not None:
            _opt(el, "cbc:StartDate", p.start)
            _opt(el, "cbc:EndDate", p.end)
        _opt(el, "cbc:DescriptionCode", code)

    def allowance(self, parent, ac: AllowanceCharge, *, header: bool) -> None:
        el = _el(parent, "cac:AllowanceCharge")
        _el(el, "cbc:ChargeIndicator", "true" if ac.charge else "false")
        _opt(el, "cbc:AllowanceChargeReasonCode", ac.reason_code)
        _opt(el, "cbc:AllowanceChargeReason", ac.reason)
        _opt(el, "cbc:MultiplierFactorNumeric", ac.percent)
        self.money(el, "cbc:Amount", ac.amount)
        self.money(el, "cbc:BaseAmount", ac.base)
        if header and ac.category:
            cat = _el(el, "cac:TaxCategory")
            _el(cat, "cbc:ID", ac.category)
            _opt(cat, "cbc:Percent", ac.rate)
            _el(_el(cat, "cac:TaxScheme"), "cbc:ID", "VAT")

    def line(self, root, li: InvoiceLine, credit: bool) -> None:
        el = _el(root, "cac:CreditNoteLine" if credit else "cac:InvoiceLine")
        _opt(el, "cbc:ID", li.id)
        _opt(el, "cbc:Note", li.note)
        if li.quantity is not None:
            _el(el, "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity", li.quantity, unitCode=li.unit)
        self.money(el, "cbc:LineExtensionAmount", li.net_amount)
        _opt(el, "cbc:AccountingCost", li.accounting_ref)
        if li.period is not None:
            self.period(el, li.period)
        if li.order_line_ref:
            _el(_el(el, "cac:OrderLineReference"), "cbc:LineID", li.order_line_ref)
        if li.object_id is not None:
            ref = _el(el, "cac:DocumentReference")
            _el(ref, "cbc:ID", li.object_id.value, schemeID=li.object_id.scheme)
            _el(ref, "cbc:DocumentTypeCode", "130")
        for ac in li.allowances_charges:
            self.allowance(el, ac, header=False)
        item = _el(el, "cac:Item")
        _opt(item, "cbc:Description", li.description)
        _opt(item, "cbc:Name", li.name)
        if li.buyer_item_id:
            _el(_el(item, "cac:BuyersItemIdentification"), "cbc:ID", li.buyer_item_id)
        if li.seller_item_id:
            _el(_el(item, "cac:SellersItemIdentification"), "cbc:ID", li.seller_item_id)
        if li.standard_id is not None:
            _el(_el(item, "cac:StandardItemIdentification"), "cbc:ID", li.standard_id.value,
                schemeID=li.standard_id.scheme)
        if li.origin_country:
            _el(_el(item, "cac:OriginCountry"), "cbc:IdentificationCode", li.origin_country)
        for c in li.classifications:
            _el(_el(item, "cac:CommodityClassification"), "cbc:ItemClassificationCode", c.value, listID=c.scheme,
                listVersionID=c.version)
        if li.tax_category:
            cat = _el(item, "cac:ClassifiedTaxCategory")
            _el(cat, "cbc:ID", li.tax_category)
            _opt(cat, "cbc:Percent", li.tax_rate)
            _el(_el(cat, "cac:TaxScheme"), "cbc:ID", "VAT")
        for a in li.attributes:
            prop = _el(item, "cac:AdditionalItemProperty")
            _el(prop, "cbc:Name", a.name)
            _el(prop, "cbc:Value", a.value)
        if li.net_price is not None or li.gross_price is not None:
            price = _el(el, "cac:Price")
            self.money(price, "cbc:PriceAmount", li.net_price)
            if li.base_quantity is not None:
                _el(price, "cbc:BaseQuantity", li.base_quantity, unitCode=li.base_unit)
            discount = li.price_discount
            if discount is None and li.gross_price is not None and li.net_price is not None:
                diff = to_decimal(li.gross_price) - to_decimal(li.net_price)
                discount = decimal(diff) if diff else None  # gross = net: UBL does not state it
            if discount is not None:
                ac = _el(price, "cac:AllowanceCharge")
                _el(ac, "cbc:ChargeIndicator", "false")
                self.money(ac, "cbc:Amount", discount)
                self.money(ac, "cbc:BaseAmount", li.gross_price)

    def build(self) -> etree._Element:
        inv = self.inv
        credit = inv.is_credit_note
        kind = "CreditNote" if credit else "Invoice"
        root = etree.Element(f"{{{NS_ROOT[kind]}}}{kind}", nsmap={None: NS_ROOT[kind], "cac": NS_CAC, "cbc": NS_CBC})
        spec = inv.specification_id if inv.specification_id and inv.syntax != "zugferd1" else DEFAULT_SPEC
        if spec.startswith("urn:ferd:") or spec.startswith("urn:factur-x.eu:1p0:basicwl"):
            spec = DEFAULT_SPEC
        _el(root, "cbc:CustomizationID", spec)
        _opt(root, "cbc:ProfileID", inv.business_process)
        _opt(root, "cbc:ID", inv.number)
        _opt(root, "cbc:IssueDate", inv.issue_date)
        if not credit:
            _opt(root, "cbc:DueDate", inv.due_date)
            _opt(root, "cbc:InvoiceTypeCode", inv.type_code)
        else:
            _opt(root, "cbc:TaxPointDate", inv.tax_point_date)
            _opt(root, "cbc:CreditNoteTypeCode", inv.type_code)
        for n in inv.notes:
            _el(root, "cbc:Note", f"#{n.subject_code}#{n.content}" if n.subject_code else n.content)
        if not credit:
            _opt(root, "cbc:TaxPointDate", inv.tax_point_date)
        _opt(root, "cbc:DocumentCurrencyCode", inv.currency)
        _opt(root, "cbc:TaxCurrencyCode", inv.tax_currency)
        _opt(root, "cbc:AccountingCost", inv.buyer_accounting_reference)
        _opt(root, "cbc:BuyerReference", inv.buyer_reference)
        self.period(root, inv.period, inv.tax_point_code) if (inv.period or inv.tax_point_code) else None
        if inv.order_reference or inv.sales_order_reference:
            order = _el(root, "cac:OrderReference")
            # UBL requires an order id; EN 16931 says "NA" when only the sales order is known
            _el(order, "cbc:ID", inv.order_reference or "NA")
            _opt(order, "cbc:SalesOrderID", inv.sales_order_reference)
        for p in inv.preceding_invoices:
            ref = _el(_el(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
            _el(ref, "cbc:ID", p.id)
            _opt(ref, "cbc:IssueDate", p.date)
        refs = [("cac:DespatchDocumentReference", inv.despatch_advice),
                ("cac:ReceiptDocumentReference", inv.receiving_advice)]
        tail = [("cac:OriginatorDocumentReference", inv.tender_reference),
                ("cac:ContractDocumentReference", inv.contract_reference)]
        if credit:  # CreditNote puts contract/additional documents before the originator reference
            refs += [tail[1]]
        else:
            refs += tail
        for name, value in refs:
            if value:
                _el(_el(root, name), "cbc:ID", value)
        self.documents(root)
        if credit and inv.tender_reference:
            _el(_el(root, "cac:OriginatorDocumentReference"), "cbc:ID", inv.tender_reference)
        if inv.project_reference:
            _el(_el(root, "cac:ProjectReference"), "cbc:ID", inv.project_reference)
        self.party(_el(root, "cac:AccountingSupplierParty"), inv.seller, creditor_id=inv.creditor_id)
        self.party(_el(root, "cac:AccountingCustomerParty"), inv.buyer)
        if inv.payee is not None:
            payee = _el(root, "cac:PayeeParty")
            for i in inv.payee.ids:
                _el(_el(payee, "cac:PartyIdentification"), "cbc:ID", i.value, schemeID=i.scheme)
            if inv.payee.name:
                _el(_el(payee, "cac:PartyName"), "cbc:Name", inv.payee.name)
            if inv.payee.legal_id is not None:
                _el(_el(payee, "cac:PartyLegalEntity"), "cbc:CompanyID", inv.payee.legal_id.value,
                    schemeID=inv.payee.legal_id.scheme)
        if inv.tax_representative is not None:
            rep = _el(root, "cac:TaxRepresentativeParty")
            r = inv.tax_representative
            if r.name:
                _el(_el(rep, "cac:PartyName"), "cbc:Name", r.name)
            self.address(rep, "cac:PostalAddress", r.address)
            if r.vat_id:
                pts = _el(rep, "cac:PartyTaxScheme")
                _el(pts, "cbc:CompanyID", r.vat_id)
                _el(_el(pts, "cac:TaxScheme"), "cbc:ID", "VAT")
        if inv.delivery_date or inv.deliver_to is not None:
            d = _el(root, "cac:Delivery")
            _opt(d, "cbc:ActualDeliveryDate", inv.delivery_date)
            to = inv.deliver_to
            if to is not None and (to.ids or to.address):
                loc = _el(d, "cac:DeliveryLocation")
                if to.ids:
                    _el(loc, "cbc:ID", to.ids[0].value, schemeID=to.ids[0].scheme)
                self.address(loc, "cac:Address", to.address)
            if to is not None and to.name:
                _el(_el(_el(d, "cac:DeliveryParty"), "cac:PartyName"), "cbc:Name", to.name)
        for i, pm in enumerate(inv.payment_means):
            means = _el(root, "cac:PaymentMeans")
            _el(means, "cbc:PaymentMeansCode", pm.code, name=pm.text)
            if credit and i == 0:
                _opt(means, "cbc:PaymentDueDate", inv.due_date)
            _opt(means, "cbc:PaymentID", inv.remittance_info)
            if pm.card_pan:
                card = _el(means, "cac:CardAccount")
                _el(card, "cbc:PrimaryAccountNumberID", pm.card_pan)
                _el(card, "cbc:NetworkID", "NA")  # UBL requires it; EN 16931 has no such term
                _opt(card, "cbc:HolderName", pm.card_holder)
            if pm.account_id:
                acct = _el(means, "cac:PayeeFinancialAccount")
                _el(acct, "cbc:ID", pm.account_id)
                _opt(acct, "cbc:Name", pm.account_name)
                if pm.bic:
                    _el(_el(acct, "cac:FinancialInstitutionBranch"), "cbc:ID", pm.bic)
            if inv.mandate_id or pm.debited_account:
                mandate = _el(means, "cac:PaymentMandate")
                _opt(mandate, "cbc:ID", inv.mandate_id)
                if pm.debited_account:
                    _el(_el(mandate, "cac:PayerFinancialAccount"), "cbc:ID", pm.debited_account)
        if inv.payment_terms:
            _el(_el(root, "cac:PaymentTerms"), "cbc:Note", inv.payment_terms)
        for ac in inv.allowances_charges:
            self.allowance(root, ac, header=True)
        t = inv.totals
        if t.tax_total is not None or inv.tax_breakdown:
            tax = _el(root, "cac:TaxTotal")
            self.money(tax, "cbc:TaxAmount", t.tax_total)
            for s in inv.tax_breakdown:
                sub = _el(tax, "cac:TaxSubtotal")
                self.money(sub, "cbc:TaxableAmount", s.basis)
                self.money(sub, "cbc:TaxAmount", s.amount)
                cat = _el(sub, "cac:TaxCategory")
                _el(cat, "cbc:ID", s.category)
                _opt(cat, "cbc:Percent", s.rate)
                _opt(cat, "cbc:TaxExemptionReasonCode", s.exemption_code)
                _opt(cat, "cbc:TaxExemptionReason", s.exemption_reason)
                _el(_el(cat, "cac:TaxScheme"), "cbc:ID", "VAT")
        if t.tax_total_tax_currency is not None and inv.tax_currency:
            self.money(_el(root, "cac:TaxTotal"), "cbc:TaxAmount", t.tax_total_tax_currency, inv.tax_currency)
        total = _el(root, "cac:LegalMonetaryTotal")
        self.money(total, "cbc:LineExtensionAmount", t.line_total)
        self.money(total, "cbc:TaxExclusiveAmount", t.tax_exclusive)
        self.money(total, "cbc:TaxInclusiveAmount", t.tax_inclusive)
        self.money(total, "cbc:AllowanceTotalAmount", t.allowance_total)
        self.money(total, "cbc:ChargeTotalAmount", t.charge_total)
        self.money(total, "cbc:PrepaidAmount", t.prepaid)
        self.money(total, "cbc:PayableRoundingAmount", t.rounding)
        self.money(total, "cbc:PayableAmount", t.payable)
        for li in inv.lines:
            self.line(root, li, credit)
        return root

    def documents(self, root) -> None:
        inv = self.inv
        for d in inv.documents:
            ref = _el(root, "cac:AdditionalDocumentReference")
            _el(ref, "cbc:ID", d.id)
            _opt(ref, "cbc:DocumentDescription", d.description)
            if d.content or d.mime or d.filename or d.uri:
                att = _el(ref, "cac:Attachment")
                if d.content or d.mime or d.filename:
                    _el(att, "cbc:EmbeddedDocumentBinaryObject", d.content or "", mimeCode=d.mime, filename=d.filename)
                if d.uri:
                    _el(_el(att, "cac:ExternalReference"), "cbc:URI", d.uri)
        if inv.invoiced_object is not None:
            ref = _el(root, "cac:AdditionalDocumentReference")
            _el(ref, "cbc:ID", inv.invoiced_object.value, schemeID=inv.invoiced_object.scheme)
            _el(ref, "cbc:DocumentTypeCode", "130")


def ubl_element(inv: Invoice) -> etree._Element:
    return _Writer(inv).build()


def write_ubl(inv: Invoice) -> bytes:
    """UBL XML bytes (UTF-8, declaration, indented)."""
    return etree.tostring(ubl_element(inv), xml_declaration=True, encoding="UTF-8", pretty_print=True)
