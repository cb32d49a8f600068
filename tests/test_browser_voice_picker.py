"""The page's voice picker, in headless Chromium: voices by tier under human labels, the page's lang following."""

from __future__ import annotations


def test_picker_lists_natural_voices_apart_from_espeak_and_the_page_lang_follows(server: str, browser) -> None:  # noqa: F811
    page = browser.new_page(bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 2", timeout=15000)
    groups = page.evaluate("[...document.querySelectorAll('#voice optgroup')].map(g => g.label)")
    assert groups == ["Natural voices", "espeak-ng"]
    joe = page.evaluate("(() => { const o = document.querySelector('#voice option[value=\"piper:en_US-joe-medium\"]');"
                        " return [o.textContent, o.parentElement.label, o.selected]; })()")
    assert joe == ["Joe (English (US), male)", "Natural voices", True]
    korean = page.evaluate("document.querySelector('#voice option[value=\"espeak:ko\"]').parentElement.label")
    assert korean == "espeak-ng"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.select_option("#voice", "espeak:ko")
    assert page.evaluate("document.documentElement.lang") == "ko"
    page.close()
