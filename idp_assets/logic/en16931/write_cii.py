""":class:`~.model.Invoice` -> UN/CEFACT CII D16B (``rsm:CrossIndustryInvoice``), elements in
the order of the Factur-X / ZUGFeRD EN 16931 schema.  Unknown terms are left out, never
written as empty or zero placeholders (the rule check then names what is missing)."""

from __future__ import annotations

from lxml import etree

from .model import AllowanceCharge, Identifier, Invoice, InvoiceLine, Party, Period

__all__ = ["NS", "PROFILE_BASICWL", "PROFILE_EN16931", "cii_element", "write_cii"]

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
PROFILE_EN16931 = "urn:cen.eu:en16931:2017"
PROFILE_BASICWL = "urn:factur-x.eu:1p0:basicwl"


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _el(parent, name: str, value: str | None = None, **attrs):
    el = etree.SubElement(parent, _q(name), {k: v for k, v in attrs.items() if v is not None})
    if value is not None:
        el.text = str(value)
    return el


def _opt(parent, name: str, value: str | None, **attrs):
    """The element only when there is a value."""
    return _el(parent, name, value, **attrs) if value not in (None, "") else None


def _date(parent, name: str, iso: str | None, wrapper: str = "udt:DateTimeString") -> None:
    if iso:
        _el(_el(parent, name), wrapper, iso.replace("-", ""), format="102")


def _id(parent, name: str, ident: Identifier | None) -> None:
    if ident is not None:
        _el(parent, name, ident.value, schemeID=ident.scheme)


def _party(parent, name: str, p: Party | None, *, role: str) -> None:
    if p is None:
        return
    el = _el(parent, name)
    for i in p.ids:
        if i.scheme is None:
            _el(el, "ram:ID", i.value)
    for i in p.ids:
        if i.scheme is not None:
            _el(el, "ram:GlobalID", i.value, schemeID=i.scheme)
    _opt(el, "ram:Name", p.name)
    if role in ("seller",):
        _opt(el, "ram:Description", p.legal_info)
    if p.legal_id is not None or p.trading_name:
        legal = _el(el, "ram:SpecifiedLegalOrganization")
        _id(legal, "ram:ID", p.legal_id)
        _opt(legal, "ram:TradingBusinessName", p.trading_name)
    c = p.contact
    if c is not None and role in ("seller", "buyer"):
        contact = _el(el, "ram:DefinedTradeContact")
        _opt(contact, "ram:PersonName", c.name)
        if c.phone:
            _el(_el(contact, "ram:TelephoneUniversalCommunication"), "ram:CompleteNumber", c.phone)
        if c.email:
            _el(_el(contact, "ram:EmailURIUniversalCommunication"), "ram:URIID", c.email)
    a = p.address
    if a is not None and a.country:  # CountryID is mandatory in a CII address
        addr = _el(el, "ram:PostalTradeAddress")
        _opt(addr, "ram:PostcodeCode", a.postcode)
        _opt(addr, "ram:LineOne", a.line1)
        _opt(addr, "ram:LineTwo", a.line2)
        _opt(addr, "ram:LineThree", a.line3)
        _opt(addr, "ram:CityName", a.city)
        _el(addr, "ram:CountryID", a.country)
        _opt(addr, "ram:CountrySubDivisionName", a.subdivision)
    if p.endpoint is not None and role in ("seller", "buyer"):
        _el(_el(el, "ram:URIUniversalCommunication"), "ram:URIID", p.endpoint.value, schemeID=p.endpoint.scheme)
    if p.vat_id:
        _el(_el(el, "ram:SpecifiedTaxRegistration"), "ram:ID", p.vat_id, schemeID="VA")
    if p.tax_number and role == "seller":
        _el(_el(el, "ram:SpecifiedTaxRegistration"), "ram:ID", p.tax_number, schemeID="FC")


def _period(parent, p: Period | None) -> None:
    if p is None or not (p.start or p.end):
        return
    el = _el(parent, "ram:BillingSpecifiedPeriod")
    _date(el, "ram:StartDateTime", p.start)
    _date(el, "ram:EndDateTime", p.end)


def _allowance(parent, ac: AllowanceCharge, *, header: bool) -> None:
    el = _el(parent, "ram:SpecifiedTradeAllowanceCharge")
    _el(_el(el, "ram:ChargeIndicator"), "udt:Indicator", "true" if ac.charge else "false")
    _opt(el, "ram:CalculationPercent", ac.percent)
    _opt(el, "ram:BasisAmount", ac.base)
    _opt(el, "ram:ActualAmount", ac.amount)
    _opt(el, "ram:ReasonCode", ac.reason_code)
    _opt(el, "ram:Reason", ac.reason)
    if header and ac.category:
        tax = _el(el, "ram:CategoryTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", ac.category)
        _opt(tax, "ram:RateApplicablePercent", ac.rate)


def _line(tx, li: InvoiceLine) -> None:
    item = _el(tx, "ram:IncludedSupplyChainTradeLineItem")
    doc = _el(item, "ram:AssociatedDocumentLineDocument")
    _opt(doc, "ram:LineID", li.id)
    if li.note:
        _el(_el(doc, "ram:IncludedNote"), "ram:Content", li.note)
    product = _el(item, "ram:SpecifiedTradeProduct")
    _id(product, "ram:GlobalID", li.standard_id)
    _opt(product, "ram:SellerAssignedID", li.seller_item_id)
    _opt(product, "ram:BuyerAssignedID", li.buyer_item_id)
    _opt(product, "ram:Name", li.name)
    _opt(product, "ram:Description", li.description)
    for a in li.attributes:
        ch = _el(product, "ram:ApplicableProductCharacteristic")
        _el(ch, "ram:Description", a.name)
        _el(ch, "ram:Value", a.value)
    for c in li.classifications:
        _el(_el(product, "ram:DesignatedProductClassification"), "ram:ClassCode", c.value, listID=c.scheme,
            listVersionID=c.version)
    if li.origin_country:
        _el(_el(product, "ram:OriginTradeCountry"), "ram:ID", li.origin_country)
    agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
    if li.order_line_ref:
        _el(_el(agreement, "ram:BuyerOrderReferencedDocument"), "ram:LineID", li.order_line_ref)
    if li.gross_price is not None:
        gross = _el(agreement, "ram:GrossPriceProductTradePrice")
        _el(gross, "ram:ChargeAmount", li.gross_price)
        if li.base_quantity is not None:
            _el(gross, "ram:BasisQuantity", li.base_quantity, unitCode=li.base_unit)
        if li.price_discount is not None:
            ac = _el(gross, "ram:AppliedTradeAllowanceCharge")
            _el(_el(ac, "ram:ChargeIndicator"), "udt:Indicator", "false")
            _el(ac, "ram:ActualAmount", li.price_discount)
    if li.net_price is not None:
        net = _el(agreement, "ram:NetPriceProductTradePrice")
        _el(net, "ram:ChargeAmount", li.net_price)
        if li.base_quantity is not None:
            _el(net, "ram:BasisQuantity", li.base_quantity, unitCode=li.base_unit)
    delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
    if li.quantity is not None:
        _el(delivery, "ram:BilledQuantity", li.quantity, unitCode=li.unit)
    settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
    if li.tax_category:
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", li.tax_category)
        _opt(tax, "ram:RateApplicablePercent", li.tax_rate)
    _period(settlement, li.period)
    for ac in li.allowances_charges:
        _allowance(settlement, ac, header=False)
    summ = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
    _opt(summ, "ram:LineTotalAmount", li.net_amount)
    if li.object_id is not None:
        ref = _el(settlement, "ram:AdditionalReferencedDocument")
        _el(ref, "ram:IssuerAssignedID", li.object_id.value)
        _el(ref, "ram:TypeCode", "130")
        _opt(ref, "ram:ReferenceTypeCode", li.object_id.scheme)
    if li.accounting_ref:
        _el(_el(settlement, "ram:ReceivableSpecifiedTradeAccountingAccount"), "ram:ID", li.accounting_ref)


def _guideline(inv: Invoice) -> str:
    spec = inv.specification_id
    if spec and inv.syntax != "zugferd1" and not spec.startswith("urn:ferd:"):
        return spec
    return PROFILE_EN16931 if inv.lines else PROFILE_BASICWL


def cii_element(inv: Invoice) -> etree._Element:
    """The ``rsm:CrossIndustryInvoice`` element of an invoice."""
    root = etree.Element(_q("rsm:CrossIndustryInvoice"), nsmap=NS)
    ctx = _el(root, "rsm:ExchangedDocumentContext")
    if inv.business_process:
        _el(_el(ctx, "ram:BusinessProcessSpecifiedDocumentContextParameter"), "ram:ID", inv.business_process)
    _el(_el(ctx, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", _guideline(inv))
    doc = _el(root, "rsm:ExchangedDocument")
    _opt(doc, "ram:ID", inv.number)
    _opt(doc, "ram:TypeCode", inv.type_code)
    _date(doc, "ram:IssueDateTime", inv.issue_date)
    for n in inv.notes:
        note = _el(doc, "ram:IncludedNote")
        _el(note, "ram:Content", n.content)
        _opt(note, "ram:SubjectCode", n.subject_code)

    tx = _el(root, "rsm:SupplyChainTradeTransaction")
    for li in inv.lines:
        _line(tx, li)

    agreement = _el(tx, "ram:ApplicableHeaderTradeAgreement")
    _opt(agreement, "ram:BuyerReference", inv.buyer_reference)
    _party(agreement, "ram:SellerTradeParty", inv.seller, role="seller")
    _party(agreement, "ram:BuyerTradeParty", inv.buyer, role="buyer")
    _party(agreement, "ram:SellerTaxRepresentativeTradeParty", inv.tax_representative, role="representative")
    for name, value in (("ram:SellerOrderReferencedDocument", inv.sales_order_reference),
                        ("ram:BuyerOrderReferencedDocument", inv.order_reference),
                        ("ram:ContractReferencedDocument", inv.contract_reference)):
        if value:
            _el(_el(agreement, name), "ram:IssuerAssignedID", value)
    for d in inv.documents:
        ref = _el(agreement, "ram:AdditionalReferencedDocument")
        _el(ref, "ram:IssuerAssignedID", d.id)
        _opt(ref, "ram:URIID", d.uri)
        _el(ref, "ram:TypeCode", "916")
        _opt(ref, "ram:Name", d.description)
        if d.content or d.mime or d.filename:
            _el(ref, "ram:AttachmentBinaryObject", d.content or "", mimeCode=d.mime, filename=d.filename)
    if inv.tender_reference:
        ref = _el(agreement, "ram:AdditionalReferencedDocument")
        _el(ref, "ram:IssuerAssignedID", inv.tender_reference)
        _el(ref, "ram:TypeCode", "50")
    if inv.invoiced_object is not None:
        ref = _el(agreement, "ram:AdditionalReferencedDocument")
        _el(ref, "ram:IssuerAssignedID", inv.invoiced_object.value)
        _el(ref, "ram:TypeCode", "130")
        _opt(ref, "ram:ReferenceTypeCode", inv.invoiced_object.scheme)
    if inv.project_reference:
        project = _el(agreement, "ram:SpecifiedProcuringProject")
        _el(project, "ram:ID", inv.project_reference)
        # the CII schema requires a project name, which EN 16931 does not have (BT-11 is the id
        # only); the syntax binding prescribes this fixed text
        _el(project, "ram:Name", "Project reference")

    delivery = _el(tx, "ram:ApplicableHeaderTradeDelivery")
    _party(delivery, "ram:ShipToTradeParty", inv.deliver_to, role="deliver_to")
    if inv.delivery_date:
        _date(_el(delivery, "ram:ActualDeliverySupplyChainEvent"), "ram:OccurrenceDateTime", inv.delivery_date)
    for name, value in (("ram:DespatchAdviceReferencedDocument", inv.despatch_advice),
                        ("ram:ReceivingAdviceReferencedDocument", inv.receiving_advice)):
        if value:
            _el(_el(delivery, name), "ram:IssuerAssignedID", value)

    settlement = _el(tx, "ram:ApplicableHeaderTradeSettlement")
    _opt(settlement, "ram:CreditorReferenceID", inv.creditor_id)
    _opt(settlement, "ram:PaymentReference", inv.remittance_info)
    _opt(settlement, "ram:TaxCurrencyCode", inv.tax_currency)
    _opt(settlement, "ram:InvoiceCurrencyCode", inv.currency)
    _party(settlement, "ram:PayeeTradeParty", inv.payee, role="payee")
    for pm in inv.payment_means:
        means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        _el(means, "ram:TypeCode", pm.code)
        _opt(means, "ram:Information", pm.text)
        if pm.card_pan:
            card = _el(means, "ram:ApplicableTradeSettlementFinancialCard")
            _el(card, "ram:ID", pm.card_pan)
            _opt(card, "ram:CardholderName", pm.card_holder)
        if pm.debited_account:
            _el(_el(means, "ram:PayerPartyDebtorFinancialAccount"), "ram:IBANID", pm.debited_account)
        if pm.account_id or pm.account_name:
            acct = _el(means, "ram:PayeePartyCreditorFinancialAccount")
            is_iban = bool(pm.account_id) and pm.account_id[:2].isalpha() and pm.account_id[2:4].isdigit()
            _opt(acct, "ram:IBANID", pm.account_id if is_iban else None)
            _opt(acct, "ram:AccountName", pm.account_name)
            _opt(acct, "ram:ProprietaryID", None if is_iban else pm.account_id)
        if pm.bic:
            _el(_el(means, "ram:PayeeSpecifiedCreditorFinancialInstitution"), "ram:BICID", pm.bic)
    for i, t in enumerate(inv.tax_breakdown):
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _opt(tax, "ram:CalculatedAmount", t.amount)
        _el(tax, "ram:TypeCode", "VAT")
        _opt(tax, "ram:ExemptionReason", t.exemption_reason)
        _opt(tax, "ram:BasisAmount", t.basis)
        _el(tax, "ram:CategoryCode", t.category)
        _opt(tax, "ram:ExemptionReasonCode", t.exemption_code)
        if i == 0 and inv.tax_point_date:
            _el(_el(tax, "ram:TaxPointDate"), "udt:DateString", inv.tax_point_date.replace("-", ""), format="102")
        if i == 0:
            _opt(tax, "ram:DueDateTypeCode", inv.tax_point_code)
        _opt(tax, "ram:RateApplicablePercent", t.rate)
    _period(settlement, inv.period)
    for ac in inv.allowances_charges:
        _allowance(settlement, ac, header=True)
    if inv.payment_terms or inv.due_date or inv.mandate_id:
        terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
        _opt(terms, "ram:Description", inv.payment_terms)
        _date(terms, "ram:DueDateDateTime", inv.due_date)
        _opt(terms, "ram:DirectDebitMandateID", inv.mandate_id)
    t = inv.totals
    summ = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _opt(summ, "ram:LineTotalAmount", t.line_total)
    _opt(summ, "ram:ChargeTotalAmount", t.charge_total)
    _opt(summ, "ram:AllowanceTotalAmount", t.allowance_total)
    _opt(summ, "ram:TaxBasisTotalAmount", t.tax_exclusive)
    _opt(summ, "ram:TaxTotalAmount", t.tax_total, currencyID=inv.currency)
    _opt(summ, "ram:TaxTotalAmount", t.tax_total_tax_currency, currencyID=inv.tax_currency)
    _opt(summ, "ram:RoundingAmount", t.rounding)
    _opt(summ, "ram:GrandTotalAmount", t.tax_inclusive)
    _opt(summ, "ram:TotalPrepaidAmount", t.prepaid)
    _opt(summ, "ram:DuePayableAmount", t.payable)
    for p in inv.preceding_invoices:
        ref = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(ref, "ram:IssuerAssignedID", p.id)
        if p.date:
            _el(_el(ref, "ram:FormattedIssueDateTime"), "qdt:DateTimeString", p.date.replace("-", ""), format="102")
    if inv.buyer_accounting_reference:
        _el(_el(settlement, "ram:ReceivableSpecifiedTradeAccountingAccount"), "ram:ID", inv.buyer_accounting_reference)
    return root


def write_cii(inv: Invoice) -> bytes:
    """CII XML bytes (UTF-8, declaration, indented)."""
    return etree.tostring(cii_element(inv), xml_declaration=True, encoding="UTF-8", pretty_print=True)
