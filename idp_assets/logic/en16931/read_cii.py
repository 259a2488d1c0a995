"""UN/CEFACT CII (ZUGFeRD 2.x / Factur-X / XRechnung CII, D16B) and ZUGFeRD 1.0
(``CrossIndustryDocument``) -> :class:`~.model.Invoice`.

Elements are found by local name, so both generations share one reader (ZUGFeRD 1.0 names
are given as alternatives).
"""

from __future__ import annotations

from .model import (Address, AllowanceCharge, Contact, DocumentReference, Identifier, Invoice, InvoiceLine,
                    ItemAttribute, Note, Party, PaymentMeans, Period, PrecedingInvoice, TaxSubtotal, Totals,
                    amount, decimal)
from .xmlsafe import EInvoiceError, all_, date102, detect_syntax, first, kids, identifier, text

__all__ = ["read_cii"]

AGREEMENT = ("ApplicableHeaderTradeAgreement", "ApplicableSupplyChainTradeAgreement")
DELIVERY = ("ApplicableHeaderTradeDelivery", "ApplicableSupplyChainTradeDelivery")
SETTLEMENT = ("ApplicableHeaderTradeSettlement", "ApplicableSupplyChainTradeSettlement")
SUMMATION = ("SpecifiedTradeSettlementHeaderMonetarySummation", "SpecifiedTradeSettlementMonetarySummation")
LINE_AGREEMENT = ("SpecifiedLineTradeAgreement", "SpecifiedSupplyChainTradeAgreement")
LINE_DELIVERY = ("SpecifiedLineTradeDelivery", "SpecifiedSupplyChainTradeDelivery")
LINE_SETTLEMENT = ("SpecifiedLineTradeSettlement", "SpecifiedSupplyChainTradeSettlement")
LINE_SUMMATION = ("SpecifiedTradeSettlementLineMonetarySummation", "SpecifiedTradeSettlementMonetarySummation")
RATE = ("RateApplicablePercent", "ApplicablePercent")


def _address(el) -> Address | None:
    if el is None:
        return None
    a = Address(line1=text(el, "LineOne"), line2=text(el, "LineTwo"), line3=text(el, "LineThree"),
                city=text(el, "CityName"), postcode=text(el, "PostcodeCode"),
                subdivision=text(el, "CountrySubDivisionName"), country=text(el, "CountryID"))
    return a if any(a.model_dump().values()) else None


def _contact(el) -> Contact | None:
    if el is None:
        return None
    c = Contact(name=text(el, "PersonName") or text(el, "DepartmentName"),
                phone=text(el, "TelephoneUniversalCommunication", "CompleteNumber"),
                email=text(el, "EmailURIUniversalCommunication", "URIID"))
    return c if any(c.model_dump().values()) else None


def _party(el, *, contact: bool = True) -> Party | None:
    if el is None:
        return None
    vat = tax = None
    for reg in all_(el, "SpecifiedTaxRegistration", "ID"):
        scheme = (reg.get("schemeID") or "").upper()
        if scheme == "VA" and not vat:
            vat = "".join((text(reg) or "").split()) or None
        elif scheme == "FC" and not tax:
            tax = text(reg)
    legal = first(el, "SpecifiedLegalOrganization")
    endpoint = first(el, "URIUniversalCommunication", "URIID")
    trading = text(legal, "TradingBusinessName")
    return Party(
        name=text(el, "Name"),
        trading_name=trading if trading != text(el, "Name") else None,
        ids=[i for i in (identifier(x) for x in kids(el, "ID") + kids(el, "GlobalID")) if i],
        legal_id=identifier(first(legal, "ID")) if legal is not None and first(legal, "ID") is not None else None,
        legal_info=text(el, "Description"),
        vat_id=vat,
        tax_number=tax,
        endpoint=identifier(endpoint) if endpoint is not None else None,
        address=_address(first(el, "PostalTradeAddress")),
        contact=_contact(first(el, "DefinedTradeContact")) if contact else None,
    )


def _indicator(el) -> bool:
    return (text(el, "ChargeIndicator") or "").strip().lower() in ("true", "1")


def _allowance(el) -> AllowanceCharge:
    tax = first(el, "CategoryTradeTax")
    return AllowanceCharge(
        charge=_indicator(el), amount=amount(text(el, "ActualAmount")), base=amount(text(el, "BasisAmount")),
        percent=decimal(text(el, "CalculationPercent")),
        category=text(tax, "CategoryCode") if tax is not None else None,
        rate=decimal(text(tax, RATE)) if tax is not None else None,
        reason=text(el, "Reason"), reason_code=text(el, "ReasonCode"))


def _logistics(el) -> AllowanceCharge:
    """ZUGFeRD 1.0 ``SpecifiedLogisticsServiceCharge`` (shipping etc.): a document-level charge."""
    tax = first(el, "AppliedTradeTax")
    return AllowanceCharge(charge=True, amount=amount(text(el, "AppliedAmount")), reason=text(el, "Description"),
                           category=text(tax, "CategoryCode"), rate=decimal(text(tax, RATE)))


def _period(el) -> Period | None:
    if el is None:
        return None
    p = Period(start=date102(first(el, "StartDateTime")), end=date102(first(el, "EndDateTime")))
    return p if p.start or p.end else None


def _money(parent, name: str, currency: str | None) -> str | None:
    """``name`` child amount; with several (one per currency), the invoice currency's."""
    els = kids(parent, name)
    if not els:
        return None
    if currency and len(els) > 1:
        for e in els:
            if (e.get("currencyID") or "").upper() == currency.upper():
                return amount(text(e))
    return amount(text(els[0]))


def _line(item) -> InvoiceLine:
    doc = first(item, "AssociatedDocumentLineDocument")
    product = first(item, "SpecifiedTradeProduct")
    agreement = first(item, LINE_AGREEMENT)
    delivery = first(item, LINE_DELIVERY)
    settlement = first(item, LINE_SETTLEMENT)
    gross = first(agreement, "GrossPriceProductTradePrice")
    net = first(agreement, "NetPriceProductTradePrice")
    qty = first(delivery, "BilledQuantity")
    tax = first(settlement, "ApplicableTradeTax")
    total_el = first(settlement, LINE_SUMMATION, "LineTotalAmount")
    basis = first(net, "BasisQuantity") if first(net, "BasisQuantity") is not None else first(gross, "BasisQuantity")
    obj = next((d for d in all_(settlement, "AdditionalReferencedDocument") if text(d, "TypeCode") == "130"), None)
    discount = None
    for ac in all_(gross, "AppliedTradeAllowanceCharge"):
        if not _indicator(ac):
            discount = amount(text(ac, "ActualAmount"))
    name_raw = text(product, "Name")
    return InvoiceLine(
        id=text(doc, "LineID"),
        note=text(doc, "IncludedNote", "Content"),
        object_id=identifier(first(obj, "IssuerAssignedID")) if obj is not None and first(obj, "IssuerAssignedID") is not None else None,
        quantity=decimal(text(qty)),
        unit=qty.get("unitCode") if qty is not None else None,
        net_amount=amount(text(total_el)),
        order_line_ref=text(agreement, "BuyerOrderReferencedDocument", "LineID"),
        accounting_ref=text(settlement, "ReceivableSpecifiedTradeAccountingAccount", "ID"),
        period=_period(first(settlement, "BillingSpecifiedPeriod")),
        allowances_charges=[_allowance(a) for a in all_(settlement, "SpecifiedTradeAllowanceCharge")],
        net_price=decimal(text(net, "ChargeAmount")),
        price_discount=decimal(discount),
        gross_price=decimal(text(gross, "ChargeAmount")),
        base_quantity=decimal(text(basis)),
        base_unit=basis.get("unitCode") if basis is not None else None,
        tax_category=text(tax, "CategoryCode"),
        tax_rate=decimal(text(tax, RATE)),
        name=name_raw,
        description=text(product, "Description"),
        seller_item_id=text(product, "SellerAssignedID"),
        buyer_item_id=text(product, "BuyerAssignedID"),
        standard_id=identifier(first(product, "GlobalID")) if first(product, "GlobalID") is not None else None,
        classifications=[i for i in (identifier(c) for c in all_(product, "DesignatedProductClassification", "ClassCode")) if i],
        origin_country=text(product, "OriginTradeCountry", "ID"),
        attributes=[ItemAttribute(name=text(c, "Description") or "", value=text(c, "Value") or "")
                    for c in all_(product, "ApplicableProductCharacteristic") if text(c, "Description")],
        as_written={"line_id": text(doc, "LineID"), "name": " ".join(name_raw.split()) if name_raw else None,
                    "quantity": text(qty), "unit": qty.get("unitCode") if qty is not None else None,
                    "net_unit_price": text(net, "ChargeAmount"), "line_total": text(total_el)},
    )


def read_cii(root) -> Invoice:
    """The invoice of a CII root element (see module doc); :class:`EInvoiceError` for other roots."""
    syntax = detect_syntax(root)
    if syntax not in ("cii", "zugferd1"):
        raise EInvoiceError(f"not a CII invoice (root element {root.tag!r})", "unsupported_type")
    if syntax == "zugferd1":
        ctx, hdr, tx = (first(root, n) for n in ("SpecifiedExchangedDocumentContext", "HeaderExchangedDocument",
                                                  "SpecifiedSupplyChainTradeTransaction"))
    else:
        ctx, hdr, tx = (first(root, n) for n in ("ExchangedDocumentContext", "ExchangedDocument",
                                                  "SupplyChainTradeTransaction"))
    if hdr is None or tx is None:
        raise EInvoiceError("CII invoice without document header or trade transaction")
    agreement, delivery, settlement = first(tx, AGREEMENT), first(tx, DELIVERY), first(tx, SETTLEMENT)
    currency = text(settlement, "InvoiceCurrencyCode")
    currency = currency.upper() if currency else None
    tax_currency = text(settlement, "TaxCurrencyCode")
    summ = first(settlement, SUMMATION)
    terms = all_(settlement, "SpecifiedTradePaymentTerms")

    docs, tender, invoiced_object = [], None, None
    for d in all_(agreement, "AdditionalReferencedDocument"):
        code, ident = text(d, "TypeCode"), text(d, "IssuerAssignedID")
        if code == "50":
            tender = ident
        elif code == "130" and ident:
            invoiced_object = Identifier(value=ident, scheme=text(d, "ReferenceTypeCode"))
        elif ident:
            att = first(d, "AttachmentBinaryObject")
            docs.append(DocumentReference(
                id=ident, description=text(d, "Name"), uri=text(d, "URIID"),
                content="".join(text(att).split()) if att is not None and text(att) else None,
                mime=att.get("mimeCode") if att is not None else None,
                filename=att.get("filename") if att is not None else None))

    means = []
    for pm in all_(settlement, "SpecifiedTradeSettlementPaymentMeans"):
        acct = first(pm, "PayeePartyCreditorFinancialAccount")
        iban = text(acct, "IBANID")
        card = first(pm, "ApplicableTradeSettlementFinancialCard")
        means.append(PaymentMeans(
            code=text(pm, "TypeCode") or "1",
            text=text(pm, "Information"),
            account_id="".join(iban.split()).upper() if iban else text(acct, "ProprietaryID"),
            account_name=text(acct, "AccountName"),
            bic=text(pm, "PayeeSpecifiedCreditorFinancialInstitution", "BICID"),
            card_pan=text(card, "ID"), card_holder=text(card, "CardholderName"),
            debited_account=text(pm, "PayerPartyDebtorFinancialAccount", "IBANID")))

    breakdown, tax_point_date, tax_point_code = [], None, None
    for t in all_(settlement, "ApplicableTradeTax"):
        breakdown.append(TaxSubtotal(
            category=text(t, "CategoryCode") or "", rate=decimal(text(t, RATE)),
            basis=amount(text(t, "BasisAmount")), amount=amount(text(t, "CalculatedAmount")),
            exemption_reason=text(t, "ExemptionReason"), exemption_code=text(t, "ExemptionReasonCode")))
        tax_point_date = tax_point_date or date102(first(t, "TaxPointDate"))
        tax_point_code = tax_point_code or text(t, "DueDateTypeCode")

    due = next((d for d in (date102(first(t, "DueDateDateTime")) for t in terms) if d), None)
    ship = first(delivery, "ShipToTradeParty")
    payee = first(settlement, "PayeeTradeParty")
    rep = first(agreement, "SellerTaxRepresentativeTradeParty")
    project = first(agreement, "SpecifiedProcuringProject")
    return Invoice(
        syntax=syntax,
        specification_id=text(ctx, "GuidelineSpecifiedDocumentContextParameter", "ID"),
        business_process=text(ctx, "BusinessProcessSpecifiedDocumentContextParameter", "ID"),
        number=text(hdr, "ID"),
        issue_date=date102(first(hdr, "IssueDateTime")),
        type_code=text(hdr, "TypeCode"),
        currency=currency,
        tax_currency=tax_currency.upper() if tax_currency else None,
        tax_point_date=tax_point_date,
        tax_point_code=tax_point_code,
        due_date=due,
        buyer_reference=text(agreement, "BuyerReference"),
        project_reference=text(project, "ID"),
        contract_reference=text(agreement, "ContractReferencedDocument", "IssuerAssignedID"),
        order_reference=text(agreement, "BuyerOrderReferencedDocument", "IssuerAssignedID"),
        sales_order_reference=text(agreement, "SellerOrderReferencedDocument", "IssuerAssignedID"),
        receiving_advice=text(delivery, "ReceivingAdviceReferencedDocument", "IssuerAssignedID"),
        despatch_advice=text(delivery, ("DespatchAdviceReferencedDocument", "DeliveryNoteReferencedDocument"),
                             "IssuerAssignedID"),
        tender_reference=tender,
        invoiced_object=invoiced_object,
        buyer_accounting_reference=text(settlement, "ReceivableSpecifiedTradeAccountingAccount", "ID"),
        payment_terms="\n".join(d for d in (text(t, "Description") for t in terms) if d) or None,
        notes=[Note(content=c, subject_code=text(n, "SubjectCode"))
               for n in all_(hdr, "IncludedNote") for c in [text(n, "Content")] if c],
        preceding_invoices=[PrecedingInvoice(id=i, date=date102(first(d, "FormattedIssueDateTime")))
                            for d in all_(settlement, "InvoiceReferencedDocument")
                            for i in [text(d, "IssuerAssignedID")] if i],
        seller=_party(first(agreement, "SellerTradeParty")) or Party(),
        buyer=_party(first(agreement, "BuyerTradeParty")) or Party(),
        payee=_party(payee, contact=False),
        tax_representative=_party(rep, contact=False),
        deliver_to=_party(ship, contact=False),
        delivery_date=date102(first(delivery, "ActualDeliverySupplyChainEvent", "OccurrenceDateTime")),
        period=_period(first(settlement, "BillingSpecifiedPeriod")),
        payment_means=means,
        remittance_info=text(settlement, "PaymentReference"),
        mandate_id=next((m for m in (text(t, "DirectDebitMandateID") for t in terms) if m), None),
        creditor_id=text(settlement, "CreditorReferenceID"),
        allowances_charges=[_allowance(a) for a in all_(settlement, "SpecifiedTradeAllowanceCharge")]
        + [_logistics(c) for c in all_(settlement, "SpecifiedLogisticsServiceCharge")],
        tax_breakdown=breakdown,
        totals=Totals(
            line_total=_money(summ, "LineTotalAmount", currency),
            allowance_total=_money(summ, "AllowanceTotalAmount", currency),
            charge_total=_money(summ, "ChargeTotalAmount", currency),
            tax_exclusive=_money(summ, "TaxBasisTotalAmount", currency),
            tax_total=_money(summ, "TaxTotalAmount", currency),
            tax_total_tax_currency=_money(summ, "TaxTotalAmount", tax_currency)
            if tax_currency and tax_currency.upper() != currency else None,
            tax_inclusive=_money(summ, "GrandTotalAmount", currency),
            prepaid=_money(summ, "TotalPrepaidAmount", currency),
            rounding=_money(summ, "RoundingAmount", currency),
            payable=_money(summ, "DuePayableAmount", currency)),
        lines=[_line(i) for i in all_(tx, "IncludedSupplyChainTradeLineItem")],
        documents=docs,
    )
