"""The review page in a real browser (headless Debian chromium + chromium-driver, selenium):
upload (API) -> wait for the worker -> sign in -> queue -> the document's page with field boxes ->
correct the seller name, confirm the date, create the supplier -> the corrected export (API) and the
supplier master learned the name."""

from __future__ import annotations

import shutil

import pytest

from tests.fixtures.api_server import api_server, processed  # noqa: F401

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("headless chromium is needed: apt-get install chromium chromium-driver (make system-deps)")
    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _saved(driver, expected: str) -> None:
    """Wait for the page the form submission leads to and check its notice (the page text on failure)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element((By.ID, "notice"), expected))
    except TimeoutException:
        raise AssertionError(f"no notice {expected!r}; page: {driver.find_element(By.TAG_NAME, 'body').text[:1500]}")


def _field_row(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, f"field-{name}")


def test_review_flow_in_the_browser(processed, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    s, doc_id = processed, processed.documents["invoice"]
    d = browser
    # not signed in: refused, and a wrong key does not sign in
    d.get(f"{s.url}/review/queue")
    assert "401" in d.find_element(By.TAG_NAME, "h1").text
    d.get(f"{s.url}/review/login")
    d.find_element(By.ID, "credential").send_keys(s.keys["viewer"])  # a viewer may not review
    d.find_element(By.ID, "sign-in").click()
    WebDriverWait(d, 60).until(ec.text_to_be_present_in_element((By.ID, "error"), "may not review"))
    d.find_element(By.ID, "credential").send_keys(s.keys["reviewer"])
    d.find_element(By.ID, "sign-in").click()
    WebDriverWait(d, 60).until(ec.url_contains("/review/queue"))
    assert d.find_element(By.ID, "user").text == "test-reviewer"
    cookie = d.get_cookie("idp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and s.keys["reviewer"] not in cookie["value"]

    # the queue lists the document (flagged fields / new supplier); open it
    row = d.find_element(By.CSS_SELECTOR, f'tr.doc[data-document="{doc_id}"]')
    row.find_element(By.CSS_SELECTOR, "a.open").click()
    WebDriverWait(d, 60).until(ec.text_to_be_present_in_element((By.ID, "document-id"), doc_id))
    WebDriverWait(d, 60).until(lambda drv: drv.execute_script(
        "const i = document.querySelector('#page-1 img'); return i && i.complete && i.naturalWidth"))
    img = d.find_element(By.CSS_SELECTOR, "#page-1 img")
    assert d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 300
    # the date's box is drawn where the date is printed (top right of the receipt), inside the page
    box = d.find_element(By.ID, "box-date")
    page = d.find_element(By.ID, "page-1")
    b, p = box.rect, page.rect
    assert b["width"] > 5 and b["height"] > 3
    assert p["x"] + p["width"] / 2 < b["x"] < p["x"] + p["width"] and p["y"] <= b["y"] < p["y"] + p["height"] / 3
    date_row = _field_row(d, "date")
    assert "printed “31/12/2017”" in date_row.text
    conf = date_row.find_element(By.CSS_SELECTOR, "td.confidence").text
    assert conf.startswith("0.")
    # tagged 'needs review' exactly when under the review threshold (0.9; the date passes its checks)
    assert ("needs review" in date_row.text) == (float(conf) < 0.9), (conf, date_row.text)

    # correct the seller name (the manifest's ground truth is "OYO"; the rules read the legal name)
    before = _field_row(d, "supplier_name").find_element(By.CSS_SELECTOR, "td.value").text
    assert "Oravel Stays" in before
    form = d.find_element(By.ID, "form-supplier_name")
    value = form.find_element(By.NAME, "value")
    value.clear()
    value.send_keys("OYO")
    form.find_element(By.CSS_SELECTOR, "button.correct").click()
    _saved(d, "saved correct of field supplier_name")
    row = _field_row(d, "supplier_name")
    assert row.find_element(By.CSS_SELECTOR, "td.value").text == "OYO"
    assert "by test-reviewer" in row.text and f"was “{before}”" in row.text
    # confirm the date as read
    _field_row(d, "date").find_element(By.CSS_SELECTOR, "button.confirm").click()
    _saved(d, "saved confirm of field date")
    # the supplier is new: create it from the document (the corrected name)
    d.find_element(By.ID, "supplier-create").click()
    _saved(d, "saved create of supplier")
    assert "decided by test-reviewer" in d.find_element(By.ID, "supplier").text
    assert d.find_element(By.ID, "pending").text == "reviewed"

    # a form without the session's CSRF token is refused
    import httpx

    forged = httpx.post(f"{s.url}/review/documents/{doc_id}/decide", cookies={"idp_session": cookie["value"]},
                        data={"target": "field", "name": "total", "action": "correct", "value": "1", "csrf": "x"})
    assert forged.status_code == 403

    # the queue no longer lists it
    d.get(f"{s.url}/review/queue")
    WebDriverWait(d, 60).until(ec.presence_of_element_located((By.ID, "queue")))
    assert not d.find_elements(By.CSS_SELECTOR, f'tr.doc[data-document="{doc_id}"]')

    # the corrected export
    with s.client("viewer") as c:
        export = c.get(f"/api/v1/documents/{doc_id}/export.json").json()
        listed = c.get("/api/v1/documents", params={"needs_review": "false", "status": "materialized"}).json()
    name = export["fields"]["supplier_name"]
    assert name["value"] == "OYO" and name["source"] == "review" and name["confidence"] is None
    assert name["review"]["by"] == "test-reviewer" and name["review"]["previous"]["value"] == before
    assert name["review"]["previous"]["confidence"] > 0
    assert export["fields"]["date"]["source"] == "review" and export["fields"]["date"]["value"] == "2017-12-31"
    sm = export["supplier_match"]
    assert sm["source"] == "review" and sm["method"] == "decision" and sm["supplier_id"].startswith("N-")
    assert sm["name"] == "OYO" and sm["review"]["previous"]["method"] == "new"
    assert doc_id in {i["document_id"] for i in listed["items"]}

    # the supplier master has the new supplier under the reviewed name, with who decided
    from resources.suppliers_db import SupplierMaster

    master = SupplierMaster(path=str(s.data / "suppliers.sqlite"))
    assert any(sup.supplier_id == sm["supplier_id"] and sup.name == "OYO" for sup in master.all_suppliers())
    decisions = [x for x in master.decisions() if x.document_id == doc_id]
    assert decisions and decisions[-1].decision == "create" and decisions[-1].decided_by == "test-reviewer"

    # correcting the seller name of a document whose supplier is decided teaches that supplier the name
    with s.client("reviewer") as c:
        r = c.post(f"/api/v1/documents/{doc_id}/reviews",
                   json={"target": "field", "name": "supplier_name", "action": "correct", "value": "OYO Rooms"})
        assert r.status_code == 201, r.text
    learned = SupplierMaster(path=str(s.data / "suppliers.sqlite"))
    supplier = next(x for x in learned.all_suppliers() if x.supplier_id == sm["supplier_id"])
    assert "OYO Rooms" in supplier.aliases
