"""The EN 16931 semantic model of an invoice (business terms BT-x, groups BG-x) as one typed
pydantic model, independent of the syntax (CII or UBL) it was read from or is written to.

Values are plain strings: dates ISO ``YYYY-MM-DD``, codes as in the code lists, decimals in a
canonical form (:func:`amount` for money: at least two decimals; :func:`decimal` for
quantities, prices and percentages: no trailing zeros) so that the same invoice read from
CII and from UBL gives an equal model.  Anything the source does not state is ``None`` /
empty: the model never holds placeholders.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Address", "AllowanceCharge", "Contact", "DocumentReference", "Identifier", "Invoice", "InvoiceLine",
    "ItemAttribute", "Note", "Party", "PaymentMeans", "Period", "PrecedingInvoice", "TaxSubtotal", "Totals",
    "CREDIT_NOTE_CODES", "amount", "decimal", "to_decimal",
]

# UNTDID 1001 codes of credit notes (written as UBL CreditNote)
CREDIT_NOTE_CODES = frozenset({"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"})


def to_decimal(raw) -> Decimal | None:
    """A finite Decimal from text (``None`` for empty or non-numeric text)."""
    if raw is None:
        return None
    s = str(raw).strip()
    if not s:
        return None
    try:
        d = Decimal(s)
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def amount(raw) -> str | None:
    """Money: at least two decimals (``21.3`` -> ``21.30``), more only where the source has them."""
    d = to_decimal(raw)
    if d is None:
        return None
    q = d.quantize(Decimal("0.01"))
    return f"{q:f}" if q == d else f"{d.normalize():f}"


def decimal(raw) -> str | None:
    """Quantity, unit price or percentage without trailing zeros (``3.0000`` -> ``3``)."""
    d = to_decimal(raw)
    if d is None:
        return None
    s = f"{d.normalize():f}"
    return "0" if s in ("-0", "0") else s


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Identifier(_M):
    value: str
    scheme: str | None = Field(default=None, description="identification scheme (schemeID / listID)")
    version: str | None = Field(default=None, description="scheme version (BT-158 listVersionID)")


class Note(_M):
    """BG-1 invoice note."""

    content: str = Field(description="BT-22")
    subject_code: str | None = Field(default=None, description="BT-21 (UNTDID 4451)")


class Address(_M):
    """BG-5 / BG-8 / BG-12 / BG-15 postal address."""

    line1: str | None = Field(default=None, description="BT-35 / BT-50 / BT-64 / BT-75")
    line2: str | None = Field(default=None, description="BT-36 / BT-51 / BT-65 / BT-76")
    line3: str | None = Field(default=None, description="BT-162 / BT-163 / BT-164 / BT-165")
    city: str | None = Field(default=None, description="BT-37 / BT-52 / BT-66 / BT-77")
    postcode: str | None = Field(default=None, description="BT-38 / BT-53 / BT-67 / BT-78")
    subdivision: str | None = Field(default=None, description="BT-39 / BT-54 / BT-68 / BT-79")
    country: str | None = Field(default=None, description="BT-40 / BT-55 / BT-69 / BT-80 (ISO 3166-1 alpha-2)")


class Contact(_M):
    """BG-6 / BG-9 contact."""

    name: str | None = Field(default=None, description="BT-41 / BT-56")
    phone: str | None = Field(default=None, description="BT-42 / BT-57")
    email: str | None = Field(default=None, description="BT-43 / BT-58")


class Party(_M):
    """Seller BG-4, buyer BG-7, payee BG-10, tax representative BG-11, deliver-to BG-13."""

    name: str | None = Field(default=None, description="BT-27 / BT-44 / BT-59 / BT-62 / BT-70")
    trading_name: str | None = Field(default=None, description="BT-28 / BT-45")
    ids: list[Identifier] = Field(default_factory=list, description="BT-29 / BT-46 / BT-60 / BT-71")
    legal_id: Identifier | None = Field(default=None, description="BT-30 / BT-47 / BT-61")
    legal_info: str | None = Field(default=None, description="BT-33 additional legal information")
    vat_id: str | None = Field(default=None, description="BT-31 / BT-48 / BT-63")
    tax_number: str | None = Field(default=None, description="BT-32 seller tax registration (scheme FC)")
    endpoint: Identifier | None = Field(default=None, description="BT-34 / BT-49 electronic address")
    address: Address | None = None
    contact: Contact | None = None


class PaymentMeans(_M):
    """BG-16 payment instructions (one per means)."""

    code: str = Field(description="BT-81 (UNTDID 4461, e.g. 58 SEPA credit transfer)")
    text: str | None = Field(default=None, description="BT-82")
    account_id: str | None = Field(default=None, description="BT-84 IBAN or account number")
    account_name: str | None = Field(default=None, description="BT-85")
    bic: str | None = Field(default=None, description="BT-86")
    card_pan: str | None = Field(default=None, description="BT-87")
    card_holder: str | None = Field(default=None, description="BT-88")
    debited_account: str | None = Field(default=None, description="BT-91")


class TaxSubtotal(_M):
    """BG-23 VAT breakdown."""

    category: str = Field(description="BT-118 (UNCL 5305: S, Z, E, AE, K, G, O, L, M)")
    rate: str | None = Field(default=None, description="BT-119 percent")
    basis: str | None = Field(default=None, description="BT-116")
    amount: str | None = Field(default=None, description="BT-117")
    exemption_reason: str | None = Field(default=None, description="BT-120")
    exemption_code: str | None = Field(default=None, description="BT-121")


class AllowanceCharge(_M):
    """BG-20 / BG-21 (document) and BG-27 / BG-28 (line) allowances and charges."""

    charge: bool = Field(description="true: charge, false: allowance")
    amount: str | None = Field(default=None, description="BT-92 / BT-99 / BT-136 / BT-141")
    base: str | None = Field(default=None, description="BT-93 / BT-100 / BT-137 / BT-142")
    percent: str | None = Field(default=None, description="BT-94 / BT-101 / BT-138 / BT-143")
    category: str | None = Field(default=None, description="BT-95 / BT-102 (document level only)")
    rate: str | None = Field(default=None, description="BT-96 / BT-103 (document level only)")
    reason: str | None = Field(default=None, description="BT-97 / BT-104 / BT-139 / BT-144")
    reason_code: str | None = Field(default=None, description="BT-98 / BT-105 / BT-140 / BT-145")


class Period(_M):
    start: str | None = None
    end: str | None = None


class PrecedingInvoice(_M):
    """BG-3."""

    id: str = Field(description="BT-25")
    date: str | None = Field(default=None, description="BT-26")


class DocumentReference(_M):
    """BG-24 additional supporting document."""

    id: str = Field(description="BT-122")
    description: str | None = Field(default=None, description="BT-123")
    uri: str | None = Field(default=None, description="BT-124")
    content: str | None = Field(default=None, description="BT-125 attachment, base64 as in the XML")
    mime: str | None = Field(default=None, description="BT-125 mime code")
    filename: str | None = Field(default=None, description="BT-125 file name")


class ItemAttribute(_M):
    """BG-32."""

    name: str = Field(description="BT-160")
    value: str = Field(description="BT-161")


class InvoiceLine(_M):
    """BG-25 invoice line."""

    id: str | None = Field(default=None, description="BT-126")
    note: str | None = Field(default=None, description="BT-127")
    object_id: Identifier | None = Field(default=None, description="BT-128")
    quantity: str | None = Field(default=None, description="BT-129")
    unit: str | None = Field(default=None, description="BT-130 (UN/ECE Rec 20)")
    net_amount: str | None = Field(default=None, description="BT-131")
    order_line_ref: str | None = Field(default=None, description="BT-132")
    accounting_ref: str | None = Field(default=None, description="BT-133")
    period: Period | None = Field(default=None, description="BG-26 (BT-134, BT-135)")
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list, description="BG-27 / BG-28")
    net_price: str | None = Field(default=None, description="BT-146")
    price_discount: str | None = Field(default=None, description="BT-147")
    gross_price: str | None = Field(default=None, description="BT-148")
    base_quantity: str | None = Field(default=None, description="BT-149")
    base_unit: str | None = Field(default=None, description="BT-150")
    tax_category: str | None = Field(default=None, description="BT-151")
    tax_rate: str | None = Field(default=None, description="BT-152")
    name: str | None = Field(default=None, description="BT-153")
    description: str | None = Field(default=None, description="BT-154")
    seller_item_id: str | None = Field(default=None, description="BT-155")
    buyer_item_id: str | None = Field(default=None, description="BT-156")
    standard_id: Identifier | None = Field(default=None, description="BT-157")
    classifications: list[Identifier] = Field(default_factory=list, description="BT-158")
    origin_country: str | None = Field(default=None, description="BT-159")
    attributes: list[ItemAttribute] = Field(default_factory=list, description="BG-32")
    # the line as written in the source (quantity, prices, totals): feeds the line-item table,
    # whose cells are what the document says; never serialised
    as_written: dict[str, str | None] | None = Field(default=None, exclude=True, repr=False)


class Totals(_M):
    """BG-22 document totals."""

    line_total: str | None = Field(default=None, description="BT-106")
    allowance_total: str | None = Field(default=None, description="BT-107")
    charge_total: str | None = Field(default=None, description="BT-108")
    tax_exclusive: str | None = Field(default=None, description="BT-109")
    tax_total: str | None = Field(default=None, description="BT-110 (invoice currency)")
    tax_total_tax_currency: str | None = Field(default=None, description="BT-111 (tax currency BT-6)")
    tax_inclusive: str | None = Field(default=None, description="BT-112")
    prepaid: str | None = Field(default=None, description="BT-113")
    rounding: str | None = Field(default=None, description="BT-114")
    payable: str | None = Field(default=None, description="BT-115")


class Invoice(_M):
    """One invoice or credit note (EN 16931-1 semantic model)."""

    syntax: Literal["cii", "zugferd1", "ubl"] | None = Field(default=None, description="syntax it was read from")
    specification_id: str | None = Field(default=None, description="BT-24")
    business_process: str | None = Field(default=None, description="BT-23")
    number: str | None = Field(default=None, description="BT-1")
    issue_date: str | None = Field(default=None, description="BT-2")
    type_code: str | None = Field(default=None, description="BT-3 (UNTDID 1001: 380 invoice, 381 credit note)")
    currency: str | None = Field(default=None, description="BT-5")
    tax_currency: str | None = Field(default=None, description="BT-6")
    tax_point_date: str | None = Field(default=None, description="BT-7")
    tax_point_code: str | None = Field(default=None, description="BT-8")
    due_date: str | None = Field(default=None, description="BT-9")
    buyer_reference: str | None = Field(default=None, description="BT-10")
    project_reference: str | None = Field(default=None, description="BT-11")
    contract_reference: str | None = Field(default=None, description="BT-12")
    order_reference: str | None = Field(default=None, description="BT-13")
    sales_order_reference: str | None = Field(default=None, description="BT-14")
    receiving_advice: str | None = Field(default=None, description="BT-15")
    despatch_advice: str | None = Field(default=None, description="BT-16")
    tender_reference: str | None = Field(default=None, description="BT-17")
    invoiced_object: Identifier | None = Field(default=None, description="BT-18")
    buyer_accounting_reference: str | None = Field(default=None, description="BT-19")
    payment_terms: str | None = Field(default=None, description="BT-20")
    notes: list[Note] = Field(default_factory=list, description="BG-1")
    preceding_invoices: list[PrecedingInvoice] = Field(default_factory=list, description="BG-3")
    seller: Party = Field(default_factory=Party, description="BG-4")
    buyer: Party = Field(default_factory=Party, description="BG-7")
    payee: Party | None = Field(default=None, description="BG-10")
    tax_representative: Party | None = Field(default=None, description="BG-11")
    deliver_to: Party | None = Field(default=None, description="BG-13 (BT-70, BT-71, BG-15)")
    delivery_date: str | None = Field(default=None, description="BT-72")
    period: Period | None = Field(default=None, description="BG-14 (BT-73, BT-74)")
    payment_means: list[PaymentMeans] = Field(default_factory=list, description="BG-16")
    remittance_info: str | None = Field(default=None, description="BT-83")
    mandate_id: str | None = Field(default=None, description="BT-89")
    creditor_id: str | None = Field(default=None, description="BT-90")
    allowances_charges: list[AllowanceCharge] = Field(default_factory=list, description="BG-20 / BG-21")
    tax_breakdown: list[TaxSubtotal] = Field(default_factory=list, description="BG-23")
    totals: Totals = Field(default_factory=Totals, description="BG-22")
    lines: list[InvoiceLine] = Field(default_factory=list, description="BG-25")
    documents: list[DocumentReference] = Field(default_factory=list, description="BG-24")

    @property
    def is_credit_note(self) -> bool:
        return (self.type_code or "") in CREDIT_NOTE_CODES

    def semantic(self) -> dict:
        """The business content only (no syntax marker): equal for the same invoice in CII and UBL."""
        return self.model_dump(mode="json", exclude={"syntax"})
