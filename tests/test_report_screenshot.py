"""The report page in headless Chromium: it renders, every chart loads and is drawn.

Chromium is Debian's ``chromium`` package; ``make test`` installs it when it
is missing and the user is root (as in CI). The test fails, never skips,
without it: a report nobody checked in a browser is not done.
"""

import base64
import dataclasses
import html
import io
import json
import pathlib
import re
import shutil
import subprocess

import pytest
from PIL import Image

from pipeline import report
from pipeline.run_summary_test import example_facts

pytestmark = pytest.mark.slow

# Headless, offline, with no first-run or background work; each run gets a
# fresh profile folder.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Same layout width whatever the window height, so the chart positions
    # measured in one run hold in the screenshot of the next.
    "--hide-scrollbars",
)
WINDOW_WIDTH = 1200
MIN_WINDOW_HEIGHT = 3000

# Records, once the page has loaded, where each image is and whether it
# decoded; --dump-dom then prints it with the page.
_PROBE_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((image) => {
    const box = image.getBoundingClientRect();
    return {id: image.id, complete: image.complete, naturalWidth: image.naturalWidth,
            naturalHeight: image.naturalHeight, left: box.left + window.scrollX,
            top: box.top + window.scrollY, width: box.width, height: box.height};
  });
  const probe = document.createElement("pre");
  probe.id = "render-probe";
  probe.textContent = JSON.stringify(
      {images: images, pageHeight: document.documentElement.scrollHeight});
  document.body.appendChild(probe);
});
</script>"""


@dataclasses.dataclass
class Rendering:
    images: list[dict]
    page_height: int
    console_messages: list[str]
    screenshot: Image.Image


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Chromium is not installed. `make test` installs it when run as root; "
            "otherwise: sudo apt-get install -y chromium"
        )
    return path


def _run_chromium(arguments, profile: pathlib.Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def render_in_chromium(page: pathlib.Path, work: pathlib.Path) -> Rendering:
    """Loads the page twice: once to measure it, once for a full-page screenshot."""
    probe_page = work / "probe.html"
    probe_page.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE_SCRIPT + "</body>"),
        encoding="utf-8",
    )
    measured = _run_chromium(
        [
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={WINDOW_WIDTH},{MIN_WINDOW_HEIGHT}",
            "--dump-dom",
            probe_page.as_uri(),
        ],
        work / "profile-measure",
    )
    found = re.search(r'<pre id="render-probe">(.*?)</pre>', measured.stdout, re.S)
    assert found, "the probe never ran: " + measured.stderr[-3000:]
    probe = json.loads(html.unescape(found.group(1)))

    height = max(MIN_WINDOW_HEIGHT, int(probe["pageHeight"]))
    screenshot = work / "screenshot.png"
    _run_chromium(
        [f"--screenshot={screenshot}", f"--window-size={WINDOW_WIDTH},{height}", page.as_uri()],
        work / "profile-screenshot",
    )
    return Rendering(
        images=probe["images"],
        page_height=height,
        # Chromium logs each console message (errors included) as CONSOLE.
        console_messages=[line for line in measured.stderr.splitlines() if ":CONSOLE" in line],
        screenshot=Image.open(screenshot).convert("RGB"),
    )


def _pixels_near(region: Image.Image, color: str, tolerance: int = 24) -> int:
    target = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    return sum(
        count
        for count, pixel in region.getcolors(maxcolors=region.width * region.height)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, target, strict=True))
    )


def assert_every_chart_loaded_and_drawn(rendering: Rendering, expected_charts: int) -> None:
    assert rendering.console_messages == []
    assert len(rendering.images) == expected_charts
    for image in rendering.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image
        assert image["width"] > 500 and image["height"] > 100, image
        box = (
            round(image["left"]),
            round(image["top"]),
            round(image["left"] + image["width"]),
            round(image["top"] + image["height"]),
        )
        assert box[3] <= rendering.screenshot.height, (box, rendering.screenshot.size)
        region = rendering.screenshot.crop(box)
        area = region.width * region.height
        white = _pixels_near(region, "#ffffff", tolerance=8)
        # Axes, text, bars and lines: a blank or broken image is all white.
        assert (area - white) / area > 0.03, (image["id"], (area - white) / area)
        # Every chart draws this model's data in its colour.
        assert _pixels_near(region, report.CANDIDATE_COLOR) > 300, image["id"]


@pytest.fixture(scope="module")
def example_rendering(tmp_path_factory):
    work = tmp_path_factory.mktemp("report-page")
    page = work / report.REPORT_FILE
    page.write_text(report.render_html(example_facts(blessed=False)), encoding="utf-8")
    return render_in_chromium(page, work)


def test_the_page_renders_without_console_errors_and_every_chart_decodes(example_rendering):
    ids = [image["id"] for image in example_rendering.images]
    assert ids == [
        "chart-loss-curves",
        "chart-slices-Evaluator",
        "chart-slices-compression_evaluator",
        "chart-parameters",
    ]
    assert example_rendering.console_messages == []
    assert all(image["naturalWidth"] > 0 for image in example_rendering.images)


def test_the_screenshot_shows_every_chart(example_rendering):
    assert_every_chart_loaded_and_drawn(example_rendering, expected_charts=4)


def test_the_screenshot_shows_the_not_blessed_box(example_rendering):
    # The light red of the "NOT blessed" box, above the first chart.
    first_chart_top = round(example_rendering.images[0]["top"])
    top = example_rendering.screenshot.crop((0, 0, WINDOW_WIDTH, first_chart_top))
    assert _pixels_near(top, "#fbe7e7", tolerance=6) > 20_000


def test_a_blank_or_broken_chart_would_be_caught(tmp_path):
    """The checks above fail on a page whose charts did not draw or did not decode."""
    blank = io.BytesIO()
    Image.new("RGB", (1100, 360), "white").save(blank, format="PNG")
    blank_uri = "data:image/png;base64," + base64.b64encode(blank.getvalue()).decode()
    page = report.render_html(example_facts())
    pngs = re.findall(r'src="(data:image/png;base64,[^"]+)"', page)
    page = page.replace(pngs[0], blank_uri).replace(pngs[1], "data:image/png;base64,broken")
    path = tmp_path / report.REPORT_FILE
    path.write_text(page, encoding="utf-8")
    rendering = render_in_chromium(path, tmp_path)
    assert rendering.images[1]["naturalWidth"] == 0
    with pytest.raises(AssertionError):
        assert_every_chart_loaded_and_drawn(rendering, expected_charts=4)
    rendering.images = [rendering.images[0]]
    with pytest.raises(AssertionError, match="chart-loss-curves"):
        assert_every_chart_loaded_and_drawn(rendering, expected_charts=1)
