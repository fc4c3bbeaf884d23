"""Make a Great Expectations Data Docs page self-contained: the CSS, JavaScript, fonts and logo it loads from
CDNs are inlined from the copies bundled in docs_assets/ (see its README for versions and licences)."""
from __future__ import annotations

import base64
import re
from pathlib import Path

ASSETS = Path(__file__).with_name("docs_assets")
LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[^\"')\s]+")  # GE's logo, in an <img> and in CSS
# the URL each bundled file replaces, as GE 1.x's page template writes it (render/view/templates/)
BUNDLED = {
    "bootstrap.min.css": "bootstrap.min.css", "bootstrap.min.js": "bootstrap.min.js",
    "bootstrap-prefers-dark.css": "bootstrap-prefers-dark.min.css", "jquery-3.7.1.min.js": "jquery.min.js",
    "popper.min.js": "popper.min.js", "bootstrap-table.min.css": "bootstrap-table.min.css",
    "bootstrap-table.min.js": "bootstrap-table.min.js",
    "bootstrap-table-filter-control.min.js": "bootstrap-table-filter-control.min.js",
    "bootstrap-table-filter-control.css": "bootstrap-table-filter-control.css",
    "bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
    "bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js", "all.min.css": "fontawesome-all.min.css",
}
VEGA = re.compile(r'<script src="https://cdn\.jsdelivr\.net/npm/vega[^"]*">\s*</script>\s*')
LINK = re.compile(r'<link\b[^>]*href="(https://[^"]+)"[^>]*>')
SCRIPT = re.compile(r'<script\b[^>]*src="(https://[^"]+)"[^>]*>\s*</script>')
FAVICON = re.compile(r'<link rel="shortcut icon"[^>]*>')


def _asset(url: str) -> str:
    name = url.rsplit("/", 1)[-1]
    if name not in BUNDLED:
        raise KeyError(f"Data Docs page loads {url}, which govtrain does not bundle (govtrain/data/docs_assets)")
    return (ASSETS / BUNDLED[name]).read_text(encoding="utf-8")


def _fonts(css: str) -> str:
    """Font Awesome's webfont URLs as data: URIs (woff2 only; every current browser reads it)."""
    css = re.sub(r',url\(\.\./webfonts/[^)]+\.ttf\) format\("truetype"\)', "", css)

    def inline(match: re.Match[str]) -> str:
        data = base64.b64encode((ASSETS / match.group(1)).read_bytes()).decode()
        return f"url(data:font/woff2;base64,{data})"
    css = re.sub(r"url\(\.\./webfonts/(fa-(?:solid-900|regular-400|v4compatibility)\.woff2)\)", inline, css)
    return re.sub(r"@font-face\{[^}]*url\(\.\./webfonts/[^}]*\}", "", css)  # the brand font, not bundled


def offline(html: str) -> str:
    """The page with every CDN stylesheet and script inlined, the logo as a data: URI, no favicon link."""
    if "vegaEmbed(" not in html:
        html = VEGA.sub("", html)
    html = FAVICON.sub("", html)
    html = LINK.sub(lambda m: f"<style>\n{_fonts(_asset(m.group(1)))}\n</style>", html)
    html = SCRIPT.sub(lambda m: "<script>\n" + _asset(m.group(1)).replace("</script", "<\\/script") + "\n</script>",
                      html)
    logo = base64.b64encode(_ge_logo()).decode()
    return LOGO.sub(f"data:image/png;base64,{logo}", html)


def _ge_logo() -> bytes:
    """GE's own logo, from the images its package ships (render/view/static/images)."""
    import importlib.util

    spec = importlib.util.find_spec("great_expectations")
    assert spec is not None and spec.origin is not None
    return (Path(spec.origin).parent / "render" / "view" / "static" / "images" / "logo-long.png").read_bytes()
