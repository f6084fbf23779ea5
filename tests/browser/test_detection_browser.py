"""A security officer submits a leaked file in the portal, in a real browser, and reads
the verdict on the detection's page: the partner whose copy leaked is named, the z table
and the commitments are shown, and the page fits the window.

Debian's chromium, driven by Playwright, against a live server on loopback, at 1280 px
(``tests/browser/test_object_pages_browser.py`` says what is checked on every page).
"""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from partners import actions
from partners.models import Detection
from tests import factories as f
from tests.browser.test_object_pages_browser import WIDTH, Watch, _sign_in
from tests.browser.test_object_pages_browser import shots as shots
from tests.partners.detection_world import int8_per_channel, marked_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_security_officer_submits_a_leak_and_reads_the_verdict(
    live_server,
    page,
    shots,
    tmp_path,
):
    page.set_viewport_size({"width": WIDTH, "height": 900})
    world = marked_world()
    leak = tmp_path / "leaked-model-q8.safetensors"
    leak.write_bytes(int8_per_channel(world.copies["borealis"]))
    officer = f.staff("Security officer", username="sec-dan")
    device = TOTPDevice.objects.create(user=officer, name="phone", confirmed=True)
    watch = Watch(page)

    _sign_in(page, live_server.url, "sec-dan", device)
    page.goto(f"{live_server.url}/admin/partners/detection/add/")
    page.select_option("#id_release", label="v5")
    page.set_input_files("#id_suspects", str(leak))
    page.fill("#id_reason", "Found on a file-sharing site")
    watch.check(page, "1-detection-add", shots)
    page.click("input[name=_save]")
    detection = Detection.objects.get()
    assert detection.suspect_files[0]["name"] == "leaked-model-q8.safetensors"

    # The worker's part, here in the test's own process.
    actions.run_detection(detection.pk)
    page.goto(f"{live_server.url}/admin/partners/detection/{detection.pk}/change/")
    assert "One partner named: borealis" in page.locator("#story-verdict").inner_text()
    partners = page.locator("#story-partners").inner_text()
    assert partners.index("borealis") < partners.index("aurora")
    assert "#" in page.locator("#story-commitments").inner_text()
    watch.check(page, "2-detection-verdict", shots)
    with page.expect_download() as download:
        page.click("#story-report")
    assert download.value.suggested_filename == f"detection-{detection.pk}-report.json"
    page.goto(f"{live_server.url}/admin/partners/detection/")
    watch.check(page, "3-detections", shots)
