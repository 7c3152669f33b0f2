#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium.

Run by Tests/CairnTests/DashboardTests.swift against a `cairn serve` it started on a real
registry:

    dashboard.py --base http://127.0.0.1:PORT --token TOKEN --expect expect.json --screenshots DIR

`expect.json` holds what the registry holds (read by the Swift test from the database): model
names, one model's versions, serving target names, run ids. For every page this checks that it
loads signed in, shows those facts in the DOM, logs nothing to the browser console (a CSP
violation would), has one h1, a label for every form field, keyboard focus that starts at the skip
link, and text contrast of at least 4.5:1; and that without a session every page sends the
browser to the sign-in page. A screenshot of every page is written to DIR. Exit 0 when all hold;
otherwise each failure is printed and the exit status is 1.
"""
import argparse
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

PAGES = [
    ("overview", "/ui/"),
    ("models", "/ui/models"),
    ("model", None),  # the expected model's page
    ("targets", "/ui/targets"),
    ("runs", "/ui/runs"),
    ("history", "/ui/history"),
    ("plan", "/ui/plan"),
]

# The effective text and background colours of visible text elements, and their contrast.
CONTRAST_JS = """
function rgb(s) { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
  const p = m[1].split(',').map(x => parseFloat(x)); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; }
function lum(c) { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); }
function bg(el) { while (el) { const c = rgb(getComputedStyle(el).backgroundColor); if (c && c.a > 0.5) return c; el = el.parentElement; }
  return {r: 255, g: 255, b: 255, a: 1}; }
const worst = [];
for (const el of document.querySelectorAll('main p, main td, main th, main a, main span, main dt, main dd, main label, main button, main li, main caption, main pre, header a, header p, h1, h2, h3')) {
  if (!el.offsetParent && el.tagName !== 'BODY') continue;
  const text = Array.from(el.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
  if (!text) continue;
  const fg = rgb(getComputedStyle(el).color), b = bg(el);
  const l1 = lum(fg), l2 = lum(b);
  const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  if (ratio < 4.5) worst.push(el.tagName + ' "' + text.slice(0, 40) + '" ' + ratio.toFixed(2));
}
return worst.slice(0, 10);
"""

UNLABELLED_JS = """
const bad = [];
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.getAttribute('aria-label') || el.closest('label');
  if (!labelled) bad.push(el.outerHTML.slice(0, 80));
}
return bad;
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()
    expect = json.load(open(args.expect))
    os.makedirs(args.screenshots, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--disable-dev-shm-usage"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    # A form's submit returns before the next page is there; under load, looking up an element
    # at once found the page being replaced. Look-ups wait up to 10 s for the element.
    driver.implicitly_wait(10)
    failures = []

    def fail(page, message):
        failures.append(f"{page}: {message}")

    def console_errors():
        return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]

    try:
        # Without a session, every page sends the browser to sign in.
        for name, path in PAGES:
            path = path or "/ui/models/" + expect["model"]
            driver.get(args.base + path)
            if not driver.current_url.endswith("/ui/sign-in"):
                fail(name, f"without a session it showed {driver.current_url}, not the sign-in page")
        console_errors()  # the sign-in page's own messages are looked at below

        driver.get(args.base + "/ui/sign-in")
        driver.save_screenshot(os.path.join(args.screenshots, "sign-in.png"))
        field = driver.find_element(By.ID, "token")
        field.send_keys("not-a-token")
        field.submit()
        # The submit returns before the answer replaces the page: wait until the old form is gone.
        WebDriverWait(driver, 10).until(EC.staleness_of(field))
        if "Unknown or revoked token" not in driver.page_source:
            fail("sign-in", "a wrong token was not refused with a message")
        console_errors()  # the 401 of a refused sign-in is logged by the browser; expected
        field = driver.find_element(By.ID, "token")
        field.send_keys(args.token)
        field.submit()
        WebDriverWait(driver, 10).until(EC.staleness_of(field))
        if not driver.current_url.rstrip("/").endswith("/ui"):
            fail("sign-in", f"signing in led to {driver.current_url}")
        if any(c["name"] == "cairn_session" and not c.get("httpOnly") for c in driver.get_cookies()):
            fail("sign-in", "the session cookie is readable by scripts (not HttpOnly)")
        if not any(c["name"] == "cairn_session" and c.get("sameSite") == "Strict" for c in driver.get_cookies()):
            fail("sign-in", "the session cookie is not SameSite=Strict")

        # The console check itself: a missing resource is an error it must see.
        driver.get(args.base + "/ui/no-such-page")
        if not console_errors():
            fail("console", "the browser console check saw nothing on a 404; it would miss errors")

        for name, path in PAGES:
            path = path or "/ui/models/" + expect["model"]
            driver.get(args.base + path)
            text = driver.find_element(By.TAG_NAME, "body").text
            h1 = driver.find_elements(By.TAG_NAME, "h1")
            if len(h1) != 1:
                fail(name, f"{len(h1)} h1 headings")
            errors = console_errors()
            if errors:
                fail(name, "console: " + "; ".join(errors[:3]))
            unlabelled = driver.execute_script(UNLABELLED_JS)
            if unlabelled:
                fail(name, "form fields without a label: " + "; ".join(unlabelled))
            low = driver.execute_script(CONTRAST_JS)
            if low:
                fail(name, "contrast below 4.5:1: " + "; ".join(low))
            # The whole page, not only what the window shows.
            height = min(4000, driver.execute_script("return document.documentElement.scrollHeight"))
            driver.set_window_size(1400, max(1000, height))
            driver.save_screenshot(os.path.join(args.screenshots, f"{name}.png"))
            driver.set_window_size(1400, 1000)
            body = driver.find_element(By.TAG_NAME, "body")
            body.send_keys(Keys.TAB)
            focused = driver.switch_to.active_element
            if focused.text.strip() != "Skip to the content":
                fail(name, f"the first Tab focused {focused.tag_name} {focused.text!r}, not the skip link")
            current = driver.find_elements(By.CSS_SELECTOR, "nav[aria-label=Dashboard] a[aria-current=page]")
            if name != "model" and len(current) != 1:
                fail(name, "the navigation does not mark the current page")
            if name == "models":
                for model in expect["models"]:
                    if model not in text:
                        fail(name, f"model {model} is not listed")
            if name == "model":
                for version in expect["versions"]:
                    if f"v{version['number']}" not in text or version["status"] not in text:
                        fail(name, f"v{version['number']} ({version['status']}) is not shown")
                    for metric, value in version["metrics"].items():
                        if f"{metric} {value:.4f}" not in text:
                            fail(name, f"v{version['number']} {metric} {value:.4f} is not shown")
                charts = driver.find_elements(By.CSS_SELECTOR, "figure svg[role=img]")
                if len(charts) != len(expect["metricNames"]):
                    fail(name, f"{len(charts)} charts for {len(expect['metricNames'])} metrics")
                if "decisions" not in text.lower():
                    fail(name, "no decision section")
            if name == "targets":
                for target in expect["targets"]:
                    if target not in text:
                        fail(name, f"target {target} is not shown")
                if not driver.find_elements(By.CSS_SELECTOR, "svg[role=img] rect"):
                    fail(name, "no route weight bar")
            if name == "runs":
                for run in expect["runs"]:
                    if not driver.find_elements(By.XPATH, f"//td[normalize-space()='{run}']"):
                        fail(name, f"run {run} is not listed")
            if name == "history":
                if "The audit chain verifies" not in text:
                    fail(name, "the chain's verification is not shown")
                driver.find_element(By.ID, "f-model").send_keys(expect["model"])
                driver.find_element(By.ID, "f-model").submit()
                rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
                if not rows or any(expect["model"] not in r.text for r in rows):
                    fail(name, "filtering by model shows other rows")
                driver.get(args.base + path)
            if name == "plan":
                if not driver.find_elements(By.CSS_SELECTOR, "pre.plan"):
                    fail(name, "no plan shown")

        # Signing out ends the session.
        driver.get(args.base + "/ui/")
        driver.find_element(By.CSS_SELECTOR, "form.sign-out button").click()
        # The click only starts the form's submission: wait for its answer (the sign-in page)
        # before asking for a page, or that request may overtake the sign-out.
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/ui/sign-in"))
        driver.get(args.base + "/ui/models")
        if not driver.current_url.endswith("/ui/sign-in"):
            fail("sign-out", "the session still worked after signing out")
    finally:
        driver.quit()

    for failure in failures:
        print("FAIL " + failure)
    print(f"{len(PAGES)} pages checked, {len(failures)} failures; screenshots in {args.screenshots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
