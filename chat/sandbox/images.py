"""Writes the sandbox's product tiles: ``python -m chat.sandbox.images [OUTPUT_DIR]``.

Product cards need an ``image_url`` that loads offline and same-origin, so each catalog product gets a tiny SVG
tile (category colour, a soft circle and the product's first letters) under ``static/chat/sandbox/products``.
Re-run after adding products; the output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

from .catalog import PRODUCTS, Product

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "static" / "chat" / "sandbox" / "products"

#: (tile, circle) colours per category; unknown categories fall back to grey.
PALETTE: dict[str, tuple[str, str]] = {
    "dairy": ("#dbeafe", "#93c5fd"),
    "eggs": ("#fef3c7", "#fcd34d"),
    "bakery": ("#fde68a", "#d97706"),
    "grocery": ("#ede9fe", "#a78bfa"),
    "canned": ("#dcfce7", "#4ade80"),
    "vegetables": ("#d1fae5", "#10b981"),
    "fruit": ("#ffedd5", "#fb923c"),
    "meat": ("#fee2e2", "#f87171"),
    "fish": ("#e0f2fe", "#38bdf8"),
    "drinks": ("#cffafe", "#22d3ee"),
    "sweets": ("#fce7f3", "#f472b6"),
}


def initials(product: Product) -> str:
    """Two letters from the Ukrainian name: the shelf label a shopper would recognise."""
    letters = [char for char in product.name if char.isalpha()]
    return "".join(letters[:2]).capitalize()


def tile(product: Product) -> str:
    background, accent = PALETTE.get(product.category, ("#f3f4f6", "#9ca3af"))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 96" width="96" height="96" role="img">'
        f"<title>{escape(product.name)}</title>"
        f'<rect width="96" height="96" rx="18" fill="{background}"/>'
        f'<circle cx="48" cy="44" r="26" fill="{accent}" opacity=".45"/>'
        f'<text x="48" y="53" font-family="system-ui,sans-serif" font-size="26" font-weight="700" '
        f'text-anchor="middle" fill="#1f2937">{escape(initials(product))}</text>'
        f'<rect x="24" y="76" width="48" height="6" rx="3" fill="{accent}"/>'
        "</svg>\n"
    )


def write_all(output: Path = DEFAULT_OUTPUT) -> int:
    output.mkdir(parents=True, exist_ok=True)
    for product in PRODUCTS:
        (output / f"{product.sku}.svg").write_text(tile(product), encoding="utf-8")
    return len(PRODUCTS)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    print(f"wrote {write_all(target)} tiles to {target}")
