"""OASIS UBL 2.1 ``Invoice`` / ``CreditNote`` (XRechnung UBL, Peppol BIS Billing 3.0) ->
:class:`~.model.Invoice`."""

from __future__ import annotations

import re

from .model import (Address, AllowanceCharge, Contact, DocumentReference, Identifier, Invoice, InvoiceLine,
                    ItemAttribute, Note, Party, PaymentMeans, Period, PrecedingInvoice, TaxSubtotal, Totals,
                    amount, decimal, to_decimal)
from .xmlsafe import EInvoiceError, all_, detect_syntax, first, iso_date, kids, ln, identifier, text

__all__ = ["read_ubl"]

_NOTE_CODE = re.compile(r"^\s*#([A-Z]{3})#(.*)$", re.S)


def _address(el) -> Address | None:
    if el is None:
        return None
    a = Address(line1=text(el, "StreetName"), line2=text(el, "AdditionalStreetName"),
                line3=text(el, "AddressLine", "Line"), city=text(el, "CityName"), postcode=text(el, "PostalZone"),
                subdivision=text(el, "CountrySubentity"), country=text(el, "Country", "IdentificationCode"))
    return a if any(a.model_dump().values()) else None


def _party(el, *, with_sepa: bool = False, contact_ok: bool = True) -> Party | None:
    if el is None:
        return None
    vat = tax = None
    for pts in kids(el, "PartyTaxScheme"):
        cid = text(pts, "CompanyID")
        if (text(pts, "TaxScheme", "ID") or "").upper() == "VAT":
            vat = vat or ("".join(cid.split()) if cid else None)
        else:
            tax = tax or cid
    legal = first(el, "PartyLegalEntity")
    contact = first(el, "Contact")
    c = Contact(name=text(contact, "Name"), phone=text(contact, "Telephone"), email=text(contact, "ElectronicMail"))
    ids = [i for i in (identifier(x) for x in all_(el, "PartyIdentification", "ID")) if i]
    if not with_sepa:
        ids = [i for i in ids if (i.scheme or "").upper() != "SEPA"]
    legal_id = first(legal, "CompanyID")
    trading = text(el, "PartyName", "Name") if text(legal, "RegistrationName") else None
    endpoint = first(el, "EndpointID")
    return Party(
        name=text(legal, "RegistrationName") or text(el, "PartyName", "Name"),
        trading_name=trading if trading != text(legal, "RegistrationName") else None,
        ids=ids,
        legal_id=identifier(legal_id) if legal_id is not None else None,
        legal_info=text(legal, "CompanyLegalForm"),
        vat_id=vat, tax_number=tax,
        endpoint=identifier(endpoint) if endpoint is not None else None,
        address=_address(first(el, ("PostalAddress", "Address"))),
        contact=c if contact_ok and any(c.model_dump().values()) else None,
    )


def _allowance(el, *, line: bool = False) -> AllowanceCharge:
    cat = first(el, "TaxCategory")
    return AllowanceCharge(
        charge=(text(el, "ChargeIndicator") or "").lower() == "true",
        amount=amount(text(el, "Amount")), base=amount(text(el, "BaseAmount")),
        percent=decimal(text(el, "MultiplierFactorNumeric")),
        category=None if line else text(cat, "ID"), rate=None if line else decimal(text(cat, "Percent")),
        reason=text(el, "AllowanceChargeReason"), reason_code=text(el, "AllowanceChargeReasonCode"))


def _period(el) -> Period | None:
    if el is None:
        return None
    p = Period(start=iso_date(text(el, "StartDate")), end=iso_date(text(el, "EndDate")))
    return p if p.start or p.end else None


def _line(el) -> InvoiceLine:
    qty = first(el, ("InvoicedQuantity", "CreditedQuantity"))
    item = first(el, "Item")
    price = first(el, "Price")
    tax = first(item, "ClassifiedTaxCategory")
    base = first(price, "BaseQuantity")
    discount = gross = None
    for ac in kids(price, "AllowanceCharge"):
        if (text(ac, "ChargeIndicator") or "").lower() != "true":
            discount, gross = text(ac, "Amount"), text(ac, "BaseAmount")
    net_price = to_decimal(text(price, "PriceAmount"))
    if gross is None and discount is not None and net_price is not None and to_decimal(discount) is not None:
        gross = str(net_price + to_decimal(discount))  # BT-148 = BT-146 + BT-147 (the source states both)
    obj = next((d for d in kids(el, "DocumentReference") if text(d, "DocumentTypeCode") == "130"), None)
    std = first(item, "StandardItemIdentification", "ID")
    return InvoiceLine(
        id=text(el, "ID"),
        note=text(el, "Note"),
        object_id=identifier(first(obj, "ID")) if obj is not None and first(obj, "ID") is not None else None,
        quantity=decimal(text(qty)),
        unit=qty.get("unitCode") if qty is not None else None,
        net_amount=amount(text(el, "LineExtensionAmount")),
        order_line_ref=text(el, "OrderLineReference", "LineID"),
        accounting_ref=text(el, "AccountingCost"),
        period=_period(first(el, "InvoicePeriod")),
        allowances_charges=[_allowance(a, line=True) for a in kids(el, "AllowanceCharge")],
        net_price=decimal(text(price, "PriceAmount")),
        price_discount=decimal(discount),
        gross_price=decimal(gross),
        base_quantity=decimal(text(base)),
        base_unit=base.get("unitCode") if base is not None else None,
        tax_category=text(tax, "ID"),
        tax_rate=decimal(text(tax, "Percent")),
        name=text(item, "Name"),
        description=text(item, "Description"),
        seller_item_id=text(item, "SellersItemIdentification", "ID"),
        buyer_item_id=text(item, "BuyersItemIdentification", "ID"),
        standard_id=identifier(std) if std is not None else None,
        classifications=[i for i in (identifier(c) for c in all_(item, "CommodityClassification", "ItemClassificationCode")) if i],
        origin_country=text(item, "OriginCountry", "IdentificationCode"),
        attributes=[ItemAttribute(name=text(p, "Name") or "", value=text(p, "Value") or "")
                    for p in kids(item, "AdditionalItemProperty") if text(p, "Name")],
        as_written={"line_id": text(el, "ID"), "name": " ".join(text(item, "Name").split()) if text(item, "Name") else None,
                    "quantity": text(qty), "unit": qty.get("unitCode") if qty is not None else None,
                    "net_unit_price": text(price, "PriceAmount"), "line_total": text(el, "LineExtensionAmount")},
    )


def _note(raw: str) -> Note:
    m = _NOTE_CODE.match(raw)
    if m:
        return Note(content=m.group(2).strip(), subject_code=m.group(1))
    return Note(content=raw.strip())


def read_ubl(root) -> Invoice:
    """The invoice of a UBL ``Invoice`` / ``CreditNote`` root element."""
    if detect_syntax(root) != "ubl":
        raise EInvoiceError(f"not a UBL invoice (root element {root.tag!r})", "unsupported_type")
    credit = ln(root) == "CreditNote"
    currency = text(root, "DocumentCurrencyCode")
    currency = currency.upper() if currency else None
    tax_currency = text(root, "TaxCurrencyCode")
    tax_totals = kids(root, "TaxTotal")
    main_tax = next((t for t in tax_totals if kids(t, "TaxSubtotal")), tax_totals[0] if tax_totals else None)
    other_tax = next((t for t in tax_totals if t is not main_tax), None)
    total = first(root, "LegalMonetaryTotal")
    supplier = first(root, "AccountingSupplierParty", "Party")
    period = first(root, "InvoicePeriod")
    delivery = first(root, "Delivery")
    location = first(delivery, "DeliveryLocation")
    deliver_to = None
    if location is not None or first(delivery, "DeliveryParty") is not None:
        loc_id = first(location, "ID")
        deliver_to = Party(name=text(delivery, "DeliveryParty", "PartyName", "Name"),
                           ids=[identifier(loc_id)] if loc_id is not None and identifier(loc_id) else [],
                           address=_address(first(location, "Address")))
        if not any(deliver_to.model_dump(exclude_none=True, exclude_defaults=True).values()):
            deliver_to = None

    docs, tender, invoiced_object = [], text(root, "OriginatorDocumentReference", "ID"), None
    for d in kids(root, "AdditionalDocumentReference"):
        ident = first(d, "ID")
        if text(d, "DocumentTypeCode") == "130" and ident is not None:
            invoiced_object = identifier(ident)
            continue
        if ident is None or not text(ident):
            continue
        att = first(d, "Attachment", "EmbeddedDocumentBinaryObject")
        docs.append(DocumentReference(
            id=text(ident), description=text(d, "DocumentDescription"),
            uri=text(d, "Attachment", "ExternalReference", "URI"),
            content="".join(text(att).split()) if att is not None and text(att) else None,
            mime=att.get("mimeCode") if att is not None else None,
            filename=att.get("filename") if att is not None else None))

    means, remittance, mandate, due = [], None, None, iso_date(text(root, "DueDate"))
    for pm in kids(root, "PaymentMeans"):
        code_el = first(pm, "PaymentMeansCode")
        acct = first(pm, "PayeeFinancialAccount")
        card = first(pm, "CardAccount")
        acct_id = text(acct, "ID")
        means.append(PaymentMeans(
            code=text(code_el) or "1", text=code_el.get("name") if code_el is not None else None,
            account_id="".join(acct_id.split()).upper() if acct_id else None,
            account_name=text(acct, "Name"),
            bic=text(acct, "FinancialInstitutionBranch", "ID"),
            card_pan=text(card, "PrimaryAccountNumberID"), card_holder=text(card, "HolderName"),
            debited_account=text(pm, "PaymentMandate", "PayerFinancialAccount", "ID")))
        remittance = remittance or text(pm, "PaymentID")
        mandate = mandate or text(pm, "PaymentMandate", "ID")
        due = due or iso_date(text(pm, "PaymentDueDate"))
    creditor = next((text(i) for p in (supplier, first(root, "PayeeParty")) for i in all_(p, "PartyIdentification", "ID")
                     if (i.get("schemeID") or "").upper() == "SEPA"), None)
    payee = first(root, "PayeeParty")
    order_id = text(root, "OrderReference", "ID")
    rep = first(root, "TaxRepresentativeParty")
    return Invoice(
        syntax="ubl",
        specification_id=text(root, "CustomizationID"),
        business_process=text(root, "ProfileID"),
        number=text(root, "ID"),
        issue_date=iso_date(text(root, "IssueDate")),
        type_code=text(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode"),
        currency=currency,
        tax_currency=tax_currency.upper() if tax_currency else None,
        tax_point_date=iso_date(text(root, "TaxPointDate")),
        tax_point_code=text(period, "DescriptionCode"),
        due_date=due,
        buyer_reference=text(root, "BuyerReference"),
        project_reference=text(root, "ProjectReference", "ID"),
        contract_reference=text(root, "ContractDocumentReference", "ID"),
        order_reference=None if order_id == "NA" and text(root, "OrderReference", "SalesOrderID") else order_id,
        sales_order_reference=text(root, "OrderReference", "SalesOrderID"),
        receiving_advice=text(root, "ReceiptDocumentReference", "ID"),
        despatch_advice=text(root, "DespatchDocumentReference", "ID"),
        tender_reference=tender,
        invoiced_object=invoiced_object,
        buyer_accounting_reference=text(root, "AccountingCost"),
        payment_terms=text(root, "PaymentTerms", "Note"),
        notes=[_note(n) for n in (text(x) for x in kids(root, "Note")) if n],
        preceding_invoices=[PrecedingInvoice(id=i, date=iso_date(text(r, "InvoiceDocumentReference", "IssueDate")))
                            for r in kids(root, "BillingReference")
                            for i in [text(r, "InvoiceDocumentReference", "ID")] if i],
        seller=_party(supplier) or Party(),
        buyer=_party(first(root, "AccountingCustomerParty", "Party")) or Party(),
        payee=_party(payee, contact_ok=False) if payee is not None else None,
        tax_representative=_party(rep, contact_ok=False) if rep is not None else None,
        deliver_to=deliver_to,
        delivery_date=iso_date(text(delivery, "ActualDeliveryDate")),
        period=_period(period),
        payment_means=means,
        remittance_info=remittance,
        mandate_id=mandate,
        creditor_id=creditor,
        allowances_charges=[_allowance(a) for a in kids(root, "AllowanceCharge")],
        tax_breakdown=[TaxSubtotal(
            category=text(s, "TaxCategory", "ID") or "", rate=decimal(text(s, "TaxCategory", "Percent")),
            basis=amount(text(s, "TaxableAmount")), amount=amount(text(s, "TaxAmount")),
            exemption_reason=text(s, "TaxCategory", "TaxExemptionReason"),
            exemption_code=text(s, "TaxCategory", "TaxExemptionReasonCode")) for s in kids(main_tax, "TaxSubtotal")],
        totals=Totals(
            line_total=amount(text(total, "LineExtensionAmount")),
            allowance_total=amount(text(total, "AllowanceTotalAmount")),
            charge_total=amount(text(total, "ChargeTotalAmount")),
            tax_exclusive=amount(text(total, "TaxExclusiveAmount")),
            tax_total=amount(text(main_tax, "TaxAmount")),
            tax_total_tax_currency=amount(text(other_tax, "TaxAmount")),
            tax_inclusive=amount(text(total, "TaxInclusiveAmount")),
            prepaid=amount(text(total, "PrepaidAmount")),
            rounding=amount(text(total, "PayableRoundingAmount")),
            payable=amount(text(total, "PayableAmount"))),
        lines=[_line(x) for x in kids(root, "CreditNoteLine" if credit else "InvoiceLine")],
        documents=docs,
    )
