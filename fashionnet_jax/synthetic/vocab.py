"""Names of the synthetic DeepFashion: the 50 real categories, 1000 attributes.

The 50 categories are the real `list_category_cloth.txt` (`schema.CATEGORIES`,
in file order; the 1-based row is the label). The attribute list has the real
file's shape: 1000 alphabetically sorted names of the five types (1 texture,
2 fabric, 3 shape, 4 part, 5 style) in the real per-type counts. The names
that a synthetic garment can show (`DRAWN_ATTRIBUTES`) are among them; the
rest are fillers that are never drawn (negative or unknown in every image).
"""

import itertools

from fashionnet_jax import schema

# 1-based labels of the real list_category_cloth.txt.
CATEGORY_LABEL = {name: i + 1 for i, (name, _) in enumerate(schema.CATEGORIES)}
# Merged into Dress in the real data: these labels carry no image.
EMPTY_CATEGORIES = ("Cape", "Nightdress", "Shirtdress", "Sundress")

# Colour families (style attributes): name -> base RGB.
COLOURS = {
    "red": (200, 40, 45),
    "orange": (235, 130, 40),
    "yellow": (230, 205, 60),
    "green": (60, 150, 70),
    "blue": (50, 90, 200),
    "navy": (30, 40, 95),
    "purple": (120, 60, 160),
    "pink": (235, 140, 180),
    "black": (35, 35, 38),
    "white": (235, 235, 230),
    "grey": (130, 130, 135),
    "brown": (120, 80, 45),
}
TEXTURES = ("solid", "striped", "polka dot", "plaid", "floral")
FABRICS = ("cotton", "knit", "denim", "lace", "leather")
SLEEVES = {"none": "sleeveless", "short": "short sleeve", "long": "long sleeve"}
FITS = ("fitted", "loose")
# Hem length names by garment: tops, skirts/dresses/coats; trousers have none.
TOP_LENGTHS = {"short": "cropped", "regular": "hip length", "long": "longline"}
SKIRT_LENGTHS = {"short": "mini", "regular": "midi", "long": "maxi"}
NECKLINES = {
    "crew": "crew neck",
    "v": "v-neck",
    "scoop": "scoop neck",
    "hood": "hooded",
    "turtle": "turtleneck",
    "lapel": "lapel",
    "wrap": "wrap",
}
PARTS = ("pocket", "button", "zip")
# Local attributes: a small contrast patch drawn only at these landmark slots
# (schema.LANDMARK_NAMES: 0/1 collars, 2/3 sleeves, 6/7 hems), nowhere else, so
# that only a look near the landmarks tells them apart.
LOCAL_SLOTS = {"contrast collar": (0, 1), "contrast cuff": (2, 3), "trimmed hem": (6, 7)}
TRIMS = tuple(LOCAL_SLOTS)

DRAWN_ATTRIBUTES = {
    1: TEXTURES,
    2: FABRICS,
    3: tuple(SLEEVES.values()) + FITS + tuple(TOP_LENGTHS.values()) + tuple(SKIRT_LENGTHS.values()),
    4: tuple(NECKLINES.values()) + PARTS + TRIMS,
    5: tuple(COLOURS),
}
# Where each drawn attribute shows: "local" (a patch at its LOCAL_SLOTS only),
# "global" (the cloth of the whole garment: texture, fabric, colour) or "shape"
# (the silhouette, the neckline, the front parts). Fillers are never drawn.
ATTRIBUTE_EXTENT = {
    **{name: "shape" for names in DRAWN_ATTRIBUTES.values() for name in names},
    **{name: "global" for name in TEXTURES + FABRICS + tuple(COLOURS)},
    **{name: "local" for name in TRIMS},
}
# Per-type counts of the real list_attr_cloth.txt.
ATTRIBUTE_TYPE_COUNTS = {1: 156, 2: 218, 3: 180, 4: 216, 5: 230}

# Filler vocabulary: "<word> <noun>" pairs per type, never drawn.
_FILLER = {
    1: (
        (
            "abstract",
            "animal",
            "aztec",
            "baroque",
            "batik",
            "camo",
            "chevron",
            "geo",
            "graphic",
            "houndstooth",
            "ikat",
            "leopard",
            "marble",
            "ombre",
            "paisley",
            "tie-dye",
            "tribal",
        ),
        ("print", "pattern", "motif", "panel", "stripe", "wash", "dye", "mix", "block", "border"),
    ),
    2: (
        (
            "acid",
            "brushed",
            "chiffon",
            "crochet",
            "faux",
            "fleece",
            "georgette",
            "linen",
            "mesh",
            "organza",
            "satin",
            "sheer",
            "silk",
            "suede",
            "tulle",
            "tweed",
            "velvet",
            "woven",
            "jersey",
            "twill",
            "crepe",
            "boucle",
        ),
        (
            "blend",
            "weave",
            "finish",
            "trim",
            "overlay",
            "lining",
            "panel",
            "layer",
            "shell",
            "texture",
        ),
    ),
    3: (
        (
            "asymmetric",
            "boxy",
            "bodycon",
            "draped",
            "flared",
            "high-rise",
            "low-rise",
            "oversized",
            "pleated",
            "ruched",
            "skinny",
            "slim",
            "straight",
            "tiered",
            "wide",
            "a-line",
            "peplum",
            "relaxed",
        ),
        (
            "cut",
            "fit",
            "hem",
            "leg",
            "silhouette",
            "shape",
            "waist",
            "length",
            "body",
            "line",
            "drape",
        ),
    ),
    4: (
        (
            "bow",
            "cuffed",
            "cutout",
            "drawstring",
            "fringe",
            "keyhole",
            "lace-up",
            "pintuck",
            "ruffle",
            "shoulder",
            "split",
            "strappy",
            "tie",
            "twist",
            "belted",
            "hooded",
            "elastic",
            "embroidered",
            "sequin",
            "studded",
        ),
        (
            "back",
            "detail",
            "front",
            "hem",
            "neck",
            "sleeve",
            "strap",
            "trim",
            "waist",
            "yoke",
            "pocket",
        ),
    ),
    5: (
        (
            "bohemian",
            "classic",
            "festival",
            "folk",
            "grunge",
            "lounge",
            "mod",
            "nautical",
            "preppy",
            "retro",
            "romantic",
            "sporty",
            "street",
            "vintage",
            "western",
            "boho",
            "chic",
            "party",
            "summer",
            "winter",
            "beach",
            "city",
            "office",
        ),
        (
            "style",
            "look",
            "vibe",
            "wear",
            "edit",
            "mood",
            "spirit",
            "inspired",
            "glam",
            "classic",
            "days",
        ),
    ),
}


def attribute_list():
  """The 1000 `(name, attribute_type)` pairs, sorted by name like the real file."""
  names = {}
  for atype, count in ATTRIBUTE_TYPE_COUNTS.items():
    chosen = list(DRAWN_ATTRIBUTES[atype])
    words, nouns = _FILLER[atype]
    for word, noun in itertools.product(words, nouns):
      if len(chosen) == count:
        break
      name = f"{word} {noun}"
      if name not in names and name not in chosen:
        chosen.append(name)
    assert len(chosen) == count, (atype, len(chosen))
    for name in chosen:
      assert name not in names, name
      names[name] = atype
  return sorted(names.items())


ATTRIBUTES = tuple(attribute_list())
ATTRIBUTE_INDEX = {name: i for i, (name, _) in enumerate(ATTRIBUTES)}


# Anno_fine (2020): the real 26 attributes in file order, types 1-6
# (schema.FINE_ATTRIBUTE_TYPE_NAMES), and the fine name of what a garment shows
# (the nearest one: the fine list has no polka dot, plaid, lace or scoop neck).
FINE_ATTRIBUTES = (
    ("floral", 1),
    ("graphic", 1),
    ("striped", 1),
    ("embroidered", 1),
    ("pleated", 1),
    ("solid", 1),
    ("lattice", 1),
    ("long_sleeve", 2),
    ("short_sleeve", 2),
    ("sleeveless", 2),
    ("maxi_length", 3),
    ("mini_length", 3),
    ("no_dress", 3),
    ("crew_neckline", 4),
    ("v_neckline", 4),
    ("square_neckline", 4),
    ("no_neckline", 4),
    ("denim", 5),
    ("chiffon", 5),
    ("cotton", 5),
    ("leather", 5),
    ("faux", 5),
    ("knit", 5),
    ("tight", 6),
    ("loose", 6),
    ("conventional", 6),
)
FINE_ATTRIBUTE_INDEX = {name: i for i, (name, _) in enumerate(FINE_ATTRIBUTES)}
FINE_TEXTURES = {
    "solid": "solid",
    "striped": "striped",
    "floral": "floral",
    "plaid": "lattice",
    "polka dot": "graphic",
}
FINE_FABRICS = {
    "cotton": "cotton",
    "knit": "knit",
    "denim": "denim",
    "lace": "chiffon",
    "leather": "leather",
}
FINE_SLEEVES = {"none": "sleeveless", "short": "short_sleeve", "long": "long_sleeve"}
FINE_NECKLINES = {
    "crew": "crew_neckline",
    "v": "v_neckline",
    "wrap": "v_neckline",
    "lapel": "v_neckline",
    "scoop": "square_neckline",
    "hood": "no_neckline",
    "turtle": "no_neckline",
}
FINE_DRESS_LENGTHS = {"short": "mini_length", "long": "maxi_length"}  # regular: neither
FINE_FITS = {"fitted": "tight", "loose": "loose"}
FINE_ATTRIBUTE_EXTENT = {name: "global" if t in (1, 5) else "shape" for name, t in FINE_ATTRIBUTES}


def attribute_extent(name):
  """'local', 'global' or 'shape' for a drawn (coarse or fine) attribute; None for a filler."""
  return ATTRIBUTE_EXTENT.get(name) or FINE_ATTRIBUTE_EXTENT.get(name)
