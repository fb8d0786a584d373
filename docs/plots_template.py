"""Build .dvc/plots/offline.html: DVC's page template for `dvc plots show` with Vega, Vega-Lite
and Vega-Embed inlined, so the plots draw with no network (DVC's own template loads them from
a CDN). Run by hand, once per upgrade, from the npm packages' tarballs (`npm pack vega@5.20.2
vega-lite@5.2.0 vega-embed@6.18.2`, the versions dvc-render's CDN template names):

    python docs/plots_template.py vega-5.20.2.tgz vega-lite-5.2.0.tgz vega-embed-6.18.2.tgz

Nothing is fetched at run time: `dvc plots show` reads the committed template (plots.html_template
in .dvc/config). Each library's licence (BSD-3-Clause) is kept in a comment above its code.
"""
from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / ".dvc" / "plots" / "offline.html"
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite and Vega-Embed inlined (built by docs/plots_template.py): no network needed. -->
{inlined}
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def inlined(tarball: Path) -> str:
    """The package's browser build (its package.json `jsdelivr` file), after its licence."""
    with tarfile.open(tarball) as archive:
        def read(name: str) -> str:
            return archive.extractfile(f"package/{name}").read().decode("utf-8")
        package = json.loads(read("package.json"))
        code = read(package["jsdelivr"])
        licence = read("LICENSE")
    if "</script" in code.lower():
        raise SystemExit(f"{tarball}: its code holds </script>, which would end the inlined block")
    header = f"{package['name']} {package['version']} ({package['license']})\n\n{licence}".replace("*/", "* /")
    return f"<script>\n/*! {header}*/\n{code}\n</script>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarballs", nargs=3, type=Path, help="vega, vega-lite and vega-embed .tgz, in that order")
    args = parser.parse_args()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(PAGE.replace("{inlined}", "\n".join(inlined(path) for path in args.tarballs)), encoding="utf-8")
    print(OUT, f"{OUT.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
