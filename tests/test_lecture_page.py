"""The lecture page (`experiments.lecture_page`) in a real browser: headless Chromium from the
distribution's packages, driven by selenium.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian: ``apt-get install -y chromium
chromium-driver``; other paths: $VAE_JAX_CHROMIUM, $VAE_JAX_CHROMEDRIVER) and selenium (the
``test`` extra): nothing is downloaded at test time. Without them the tests fail, saying what to
install.

The page is built from a workdir the module makes itself (not ``runs/lecture``): tiny models
trained by the real training code under the experiments' run names (digits, one epoch) and JSON
with the keys the experiments write. The tests check that the page loads from ``file://`` with no
console error and no network request; that its decoder equals the checkpoint's JAX decoder
within 1e-4 per pixel; that the pointer over a latent plane changes the image shown (to the JAX
decoding of the point under it), a drag draws a path, dragging a PCA point gives the codes of
``jnp.linalg.eigh``, and the regularisation control switches runs. Screenshots of every section
and the measurements go to $VAE_JAX_ARTIFACTS (default ``runs/test-artifacts/lecture_page``).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from conftest import load_config

from experiments import lecture_page, pca_table, report, sections
from vae_jax.training import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("VAE_JAX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VAE_JAX_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver (Debian/Ubuntu), then pip install -e '.[test]'"
ARTIFACTS = os.environ.get("VAE_JAX_ARTIFACTS", os.path.join(REPO, "runs", "test-artifacts", "lecture_page"))
SECTIONS = [name for name, _ in sections.SECTIONS]
LATENT_RUNS = {"AE": "latent_space/digits_ae_z2_e1", "VAE": "latent_space/digits_vae_z2_e1"}


# ---------------------------------------------------------------------------------------------
# A lecture workdir of tiny runs


def _train(workdir, run_name, name, **overrides):
    config = load_config(name)
    config.num_epochs = 1
    for key, value in overrides.items():
        target = config
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    return run.train_and_evaluate(config, os.path.join(workdir, "workdirs", run_name))


def _write(workdir, name, numbers):
    with open(os.path.join(workdir, f"{name}.json"), "w") as f:
        json.dump(numbers, f)


def _sweep_row(beta, c, final):
    return {
        "beta": beta,
        "c": c,
        "squared_error": final["squared_error"],
        "kl": final["kl"],
        "neg_elbo": final["neg_elbo"],
        "active_units": 1,
        "posterior_std": 0.5,
        "mean_spread": 0.7,
        "confidence_ratio": 0.8,
        "empty_fraction": 0.1,
    }


def make_lecture_workdir(workdir: str) -> str:
    """The five experiments' JSON and, under ``workdirs/``, tiny trained models with the run names
    the experiments use (digits, 1 epoch): what `lecture_page` reads from ``runs/lecture``."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver(workdir=workdir):
        pca_table.main([])  # the real experiment: seconds

    finals = {name: _train(workdir, run_name, name.lower()) for name, run_name in LATENT_RUNS.items()}
    model = lambda name: {
        "test_squared_error": finals[name]["squared_error"],
        "code_mean": [0.0, 0.0],
        "code_std": [1.0, 1.0],
        "continuity": {
            "mean_ratio_normalised": 3.0,
            "max_ratio_normalised": 9.0,
            "max_jump": 0.2,
            "max_jump_worst": 0.5,
            "code_std": 1.0,
        },
        "completeness": {
            "standard_normal": {"confidence_ratio": 0.8, "empty_fraction": 0.3},
            "fitted_gaussian": {"confidence_ratio": 0.85, "empty_fraction": 0.2},
        },
    }
    latent = {"dataset": "digits", "epochs": 1, "classifier_test_accuracy": 0.9, "test_confidence": 0.9}
    latent.update(AE=model("AE"), VAE=dict(model("VAE"), prior_empty_fraction_vs_posterior_samples=0.1))
    latent["claim_checks"] = {"AE samples land in empty regions more often than VAE samples": False}
    _write(workdir, "latent_space", latent)

    # The sweep: beta = 0 trained here, beta = 1 (c = 0.05) the latent section's VAE (the same config).
    rows = {0.0: _sweep_row(0.0, 0.05, _train(workdir, "regularisation/digits_z2_e1_beta0_c0.05", "vae", beta=0.0))}
    rows[1.0] = _sweep_row(1.0, 0.05, finals["VAE"])
    shutil.copytree(
        os.path.join(workdir, "workdirs", LATENT_RUNS["VAE"]),
        os.path.join(workdir, "workdirs", "regularisation/digits_z2_e1_beta1_c0.05"),
    )
    _write(
        workdir,
        "regularisation",
        {
            "dataset": "digits",
            "latents": 2,
            "epochs": 1,
            "fixed_c": 0.05,
            "beta_sweep": [rows[0.0], rows[1.0]],
            "c_sweep": [rows[1.0]],
            "checks": {"beta sweep: KL shrinks with beta": True},
        },
    )

    pca = _train(workdir, "pca_vs_linear_ae/digits_pca_z4", "pca", **{"model.latents": 4})
    ae = _train(workdir, "pca_vs_linear_ae/digits_linear_ae_z4_e1_lr0.003", "linear_ae", **{"model.latents": 4})
    stats = {"gram_deviation": 0.5, "normalised_gram_deviation": 0.2, "gram_condition": 2.0}
    stats.update(row_norm_min=1.0, row_norm_max=2.0)
    _write(
        workdir,
        "pca_vs_linear_ae",
        {
            "dataset": "digits",
            "latents": 4,
            "epochs": 1,
            "learning_rate": 0.003,
            "principal_angles_degrees": [1.0, 2.0, 5.0, 20.0],
            "max_angle_degrees": 20.0,
            "mean_angle_degrees": 7.0,
            "pca_test_squared_error": pca["squared_error"],
            "ae_test_squared_error": ae["squared_error"],
            "relative_error_difference": ae["squared_error"] / pca["squared_error"] - 1,
            "pca_explained_variance_ratio": 0.5,
            "ae_basis": stats,
            "pca_basis": dict(stats, gram_deviation=0.0, normalised_gram_deviation=0.0, gram_condition=1.0),
            "mean_best_abs_cosine": 0.7,
            "min_best_abs_cosine": 0.5,
            "ae_code_variance": [1.0, 3.0, 2.0, 0.5],
            "pca_code_variance": [4.0, 3.0, 2.0, 1.0],
            "ae_code_variance_decreasing": False,
        },
    )

    published = [{"source": "Burda et al. 2016 (IWAE), appendix: VAE", "nll": 88.71}]
    nll = [{"k": k, "nll": 100.0 - k / 100, "standard_error": 0.5, "seconds": 1.0} for k in (1, 5, 50)]
    likelihood = {"dataset": "binarized_mnist", "epochs": 1, "latents": 2, "test_images": 24}
    likelihood.update(test_neg_elbo=100.0, test_kl=5.0, test_reconstruction=95.0, active_units=2)
    likelihood.update(nll=nll, published=published)
    _write(workdir, "likelihood", likelihood)
    return workdir


@pytest.fixture(scope="module")
def lecture_dir(tmp_path_factory):
    return make_lecture_workdir(str(tmp_path_factory.mktemp("lecture")))


@pytest.fixture(scope="module")
def page(lecture_dir):
    start = time.perf_counter()
    path, missing = lecture_page.write_page(lecture_dir)
    assert missing == []
    _record("tiny_page_build_seconds", time.perf_counter() - start)
    _record("tiny_page_bytes", os.path.getsize(path))
    return path


# ---------------------------------------------------------------------------------------------
# The browser


def _record(key, value):
    """Adds ``key: value`` to the artifacts' measurements.json."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "measurements.json")
    numbers = {}
    if os.path.exists(path):
        with open(path) as f:
            numbers = json.load(f)
    numbers[key] = value
    with open(path, "w") as f:
        json.dump(numbers, f, indent=2)


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(
            f"The lecture page's tests need headless Chromium: {', '.join(missing)} not found. Install: {INSTALL}."
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"The lecture page's tests need selenium. Install: {INSTALL}.")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, path):
    """Loads ``path`` from ``file://``, waits for the page's script; returns the load time (ms)."""
    driver.get_log("browser")  # drop earlier entries
    driver.get_log("performance")
    driver.get("file://" + os.path.abspath(path))
    for _ in range(100):
        if driver.execute_script("return window.lecturePage && window.lecturePage.ready"):
            break
        time.sleep(0.05)
    assert driver.execute_script("return window.lecturePage.errors") == []
    return driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")


def requests(driver) -> list[str]:
    """The URLs the page requested since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def canvas_image(driver, selector) -> np.ndarray:
    """The red channel (0..255, ``[h, w]``; the grey level of a grey image) of the canvas at
    ``selector``, in canvas pixels."""
    width, height, pixels = driver.execute_script(
        "const c = document.querySelector(arguments[0]);"
        "return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];",
        selector,
    )
    return np.asarray(pixels, np.float64).reshape(height, width, 4)[..., 0]


# ---------------------------------------------------------------------------------------------
# Tests


def test_page_loads_from_disk_without_console_errors_or_network(browser, page):
    with open(page) as f:
        text = f.read()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "Content-Security-Policy" in text  # default-src 'none': nothing may be fetched
    load_ms = open_page(browser, page)
    url = "file://" + os.path.abspath(page)
    others = [u for u in requests(browser) if u != url and not u.startswith("data:")]
    assert others == [], others
    assert console_errors(browser) == []
    titles = browser.execute_script("return Array.from(document.querySelectorAll('main > section')).map(s => s.id)")
    assert titles == SECTIONS
    assert "not run yet" not in browser.find_element("tag name", "main").text
    _record("tiny_page_load_ms", load_ms)
    _record("tiny_page_script_ms", browser.execute_script("return window.lecturePage.timings.total"))
    assert load_ms < 5000


def test_page_decoder_equals_the_checkpoint_decoder(browser, page, lecture_dir):
    open_page(browser, page)
    z = np.array([[0.0, 0.0], [0.5, -0.3], [-1.7, 2.2], [3.0, 3.0], [-4.0, 0.1], [0.01, -6.0]], np.float32)
    worst = {}
    for name, run_name in LATENT_RUNS.items():
        _, fns, _, params = run.restore(os.path.join(lecture_dir, "workdirs", run_name))
        expected = np.asarray(fns.decode_image(params, z)).reshape(len(z), -1)
        got = np.array(
            [
                browser.execute_script(
                    "return lecturePage.decode(arguments[0], arguments[1])", f"latent/{name}", p.tolist()
                )
                for p in z
            ]
        )
        assert got.shape == expected.shape
        worst[name] = float(np.abs(got - expected).max())
        assert worst[name] < 1e-4, (name, worst[name])
    _record("tiny_decoder_max_abs_difference", worst)


def test_pointer_over_a_latent_plane_shows_the_decoding_under_it(browser, page, lecture_dir):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, page)
    for name, run_name in LATENT_RUNS.items():
        _, fns, _, params = run.restore(os.path.join(lecture_dir, "workdirs", run_name))
        plane = browser.find_element("css selector", f"#latent-{name} canvas.plane")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plane)
        shown = []
        for dx, dy in ((-60, -50), (70, 60)):  # offsets from the plane's centre, inside its axes
            ActionChains(browser).move_to_element_with_offset(plane, dx, dy).perform()
            z = browser.execute_script(f"return lecturePage.latent['{name}'].pointer()")
            image = canvas_image(browser, f"#latent-{name} canvas.decoded")
            h, w = 8, 8  # digits
            scale = image.shape[0] // h
            grey = image[scale // 2 :: scale, scale // 2 :: scale][:h, :w]
            expected = np.asarray(fns.decode_image(params, np.array([z], np.float32)))[0, ..., 0]
            assert np.abs(grey - np.round(np.clip(expected, 0, 1) * 255)).max() <= 1, name
            shown.append((z, grey))
        (z1, a), (z2, b) = shown
        assert z1 != z2 and np.abs(a - b).max() > 0, f"{name}: the image did not change with the pointer"
        assert "nearest test code" in browser.find_element("css selector", f"#latent-{name} .readout").text


def test_a_drag_on_a_latent_plane_decodes_the_path(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, page)
    plane = browser.find_element("css selector", "#latent-VAE canvas.plane")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plane)
    before_path = browser.execute_script("return lecturePage.latent.VAE.path()")
    before_strip = canvas_image(browser, "#latent-VAE canvas.strip")
    actions = ActionChains(browser).move_to_element_with_offset(plane, -80, 60).click_and_hold()
    actions.move_by_offset(40, -30).move_by_offset(60, -50).release().perform()
    path = browser.execute_script("return lecturePage.latent.VAE.path()")
    assert path != before_path
    assert np.linalg.norm(np.subtract(path[1], path[0])) > 0
    assert np.abs(canvas_image(browser, "#latent-VAE canvas.strip") - before_strip).max() > 0
    assert "largest of 20 steps" in browser.find_element("css selector", "#latent-VAE .path-readout").text


def _eigh_codes(points):
    """Codes of ``points`` on the top eigenvector of X^T X / n, as `vae_jax.models.pca` (jnp.linalg.eigh)."""
    x = jnp.asarray(points, jnp.float32)
    _, vectors = jnp.linalg.eigh(x.T @ x / len(x))
    v = np.asarray(vectors[:, -1])
    v = v * np.sign(v[np.argmax(np.abs(v))])
    return np.asarray(points) @ v, v


def _pca_table(driver):
    rows = driver.find_elements("css selector", "#pca-table tbody tr")
    points = [
        [float(r.find_element("css selector", ".pca-initial").get_attribute(f"data-{a}")) for a in "xy"] for r in rows
    ]
    codes = [float(r.find_element("css selector", ".pca-encoded").get_attribute("data-value")) for r in rows]
    text = [[c.text for c in r.find_elements("tag name", "td")] for r in rows]
    return np.array(points), np.array(codes), text


def test_dragging_a_pca_point_recomputes_the_codes_as_eigh(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, page)
    points, codes, text = _pca_table(browser)
    lecture = [  # the lecture's table (2 decimals); the page writes minus signs as U+2212
        ["A", "(-0.50, -0.40)", "-0.63", "(-0.54, -0.33)"],
        ["B", "(-0.40, -0.10)", "-0.39", "(-0.34, -0.20)"],
        ["C", "(0.10, 0.00)", "0.09", "(0.07, 0.04)"],
        ["D", "(0.30, 0.30)", "0.41", "(0.35, 0.21)"],
        ["E", "(0.50, 0.20)", "0.53", "(0.46, 0.27)"],
    ]
    assert [[cell.replace("\u2212", "-") for cell in row] for row in text] == lecture
    assert "equals the lecture's" in browser.find_element("id", "pca-status").text
    np.testing.assert_allclose(codes, _eigh_codes(points)[0], atol=1e-5)

    point = browser.find_element("css selector", '#pca-svg .point[data-name="A"] circle')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", point)
    ActionChains(browser).click_and_hold(point).move_by_offset(30, -160).release().perform()
    moved, new_codes, _ = _pca_table(browser)
    assert np.abs(moved[0] - points[0]).max() > 0.1 and np.array_equal(moved[1:], points[1:])
    expected, component = _eigh_codes(moved)
    np.testing.assert_allclose(new_codes, expected, atol=1e-5)
    shown = browser.find_element("id", "pca-component")
    np.testing.assert_allclose([float(shown.get_attribute(f"data-{a}")) for a in "xy"], component, atol=1e-5)
    assert "Moved points" in browser.find_element("id", "pca-status").text
    browser.find_element("id", "pca-reset").click()
    np.testing.assert_array_equal(_pca_table(browser)[0], points)


def test_the_regularisation_control_switches_runs(browser, page):
    open_page(browser, page)
    buttons = browser.find_elements("css selector", ".reg-control button")
    assert len(buttons) == 3  # beta = 0, 1 and c = 0.05 (the same run as beta = 1)
    seen = []
    for button in buttons[:2]:
        button.click()
        assert button.get_attribute("aria-pressed") == "true"
        seen.append((browser.find_element("id", "reg-numbers").text, canvas_image(browser, "#reg-scatter")))
    assert seen[0][0] != seen[1][0] and np.abs(seen[0][1] - seen[1][1]).max() > 0
    selected = browser.find_elements("css selector", "table.sweep tr.selected")
    assert len(selected) == 2  # beta = 1, c = 0.05 is in both sweeps


def test_screenshot_of_each_section(browser, page):
    """Screenshots of every section of the page (look at them: $VAE_JAX_ARTIFACTS)."""
    open_page(browser, page)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 100)
    try:
        for name in SECTIONS:
            path = os.path.join(ARTIFACTS, f"{name}.png")
            browser.find_element("id", name).screenshot(path)
            assert os.path.getsize(path) > 5000, path
    finally:
        browser.set_window_size(1280, 1000)


def test_sections_not_run_yet_name_their_command(browser, lecture_dir, tmp_path):
    """An empty workdir: every section says which command makes it; a section whose JSON exists but
    whose models do not says the models are missing; either way the page loads without errors."""
    shutil.copy(os.path.join(lecture_dir, "latent_space.json"), tmp_path)
    page, missing = lecture_page.write_page(str(tmp_path))
    assert missing == [name for name in SECTIONS if name != "latent_space"]
    open_page(browser, page)
    assert console_errors(browser) == []
    main = browser.find_element("tag name", "main").text
    for name in missing:
        assert f"not run yet: {sections.command(name)}" in main
    assert "The interactive part needs the trained models" in main


def test_report_also_writes_the_page(tmp_path):
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver(workdir=str(tmp_path)):
        report.main([])
    assert (tmp_path / "REPORT.md").exists()
    text = (tmp_path / "index.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "not run yet" in text


# Imports lecture_page alone: report is not among the modules it brings in (no import circle).
IMPORTS_ALONE = """
import sys
import experiments.lecture_page
assert "experiments.report" not in sys.modules, "experiments.lecture_page imports experiments.report"
print("ok")
"""


def test_no_import_circle_between_report_and_lecture_page():
    """The report imports the page, not the other way round; both take the sections (and their
    commands) from `experiments.sections`, at module level."""
    assert report.lecture_page is lecture_page
    assert report.SECTIONS is sections.SECTIONS and lecture_page.SECTIONS is sections.SECTIONS
    assert report.command is sections.command and lecture_page.command is sections.command
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_ALONE],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
