"""The DeepFashion vocabulary, defined once: landmark slots, visibility codes,
clothes types, categories, attribute types, builder configs and backbones.

Every stage of the flow (data, synthetic, models, training, evaluation,
inference) reads these names from here; nothing here imports the package.
The values are the ones of the released files and of the builder's data contract
(docs/deepfashion.md).
"""

# The builder's 8 landmark slots, in order.
LANDMARK_NAMES = (
    "left_collar",
    "right_collar",
    "left_sleeve",
    "right_sleeve",
    "left_waistline",
    "right_waistline",
    "left_hem",
    "right_hem",
)
NUM_LANDMARKS = len(LANDMARK_NAMES)
# A horizontal flip exchanges each left slot with its right one.
FLIP_PERMUTATION = (1, 0, 3, 2, 5, 4, 7, 6)

# landmark_visibility codes: the released 0/1/2, and 3 for a slot the garment lacks.
VISIBLE, OCCLUDED, TRUNCATED, UNUSED = 0, 1, 2, 3

# Clothes types as written in the files (1-based), and their ClassLabel names.
UPPER, LOWER, FULL = 1, 2, 3
CLOTHES_TYPE_NAMES = ("upper", "lower", "full")
# A row lists its triples in its clothes type's own order; these are the
# slots those triples land in (an upper-body row's 5th triple is the left hem).
SLOTS_BY_CLOTHES_TYPE = {
    UPPER: (0, 1, 2, 3, 6, 7),
    LOWER: (4, 5, 6, 7),
    FULL: (0, 1, 2, 3, 4, 5, 6, 7),
}

# list_category_cloth.txt verbatim, in file order (the 1-based row is the label):
# (name, clothes type).
CATEGORIES = (
    ("Anorak", 1),
    ("Blazer", 1),
    ("Blouse", 1),
    ("Bomber", 1),
    ("Button-Down", 1),
    ("Cardigan", 1),
    ("Flannel", 1),
    ("Halter", 1),
    ("Henley", 1),
    ("Hoodie", 1),
    ("Jacket", 1),
    ("Jersey", 1),
    ("Parka", 1),
    ("Peacoat", 1),
    ("Poncho", 1),
    ("Sweater", 1),
    ("Tank", 1),
    ("Tee", 1),
    ("Top", 1),
    ("Turtleneck", 1),
    ("Capris", 2),
    ("Chinos", 2),
    ("Culottes", 2),
    ("Cutoffs", 2),
    ("Gauchos", 2),
    ("Jeans", 2),
    ("Jeggings", 2),
    ("Jodhpurs", 2),
    ("Joggers", 2),
    ("Leggings", 2),
    ("Sarong", 2),
    ("Shorts", 2),
    ("Skirt", 2),
    ("Sweatpants", 2),
    ("Sweatshorts", 2),
    ("Trunks", 2),
    ("Caftan", 3),
    ("Cape", 3),
    ("Coat", 3),
    ("Coverup", 3),
    ("Dress", 3),
    ("Jumpsuit", 3),
    ("Kaftan", 3),
    ("Kimono", 3),
    ("Nightdress", 3),
    ("Onesie", 3),
    ("Robe", 3),
    ("Romper", 3),
    ("Shirtdress", 3),
    ("Sundress", 3),
)
CATEGORY_TYPE = dict(CATEGORIES)

# list_attr_cloth.txt types of the 1000 released attributes (Anno_coarse).
ATTRIBUTE_TYPE_NAMES = {1: "texture", 2: "fabric", 3: "shape", 4: "part", 5: "style"}
# The 26 attributes of the 2020 Anno_fine re-labelling.
FINE_ATTRIBUTE_TYPE_NAMES = {
    1: "texture",
    2: "sleeve",
    3: "length",
    4: "neckline",
    5: "fabric",
    6: "fit",
}
NUM_ATTRIBUTES = 1000  # Anno_coarse's list_attr_cloth.txt
NUM_FINE_ATTRIBUTES = 26

# The TFDS builder's configs, one per benchmark, and the benchmark folders as released.
BENCHMARK_DIRS = {
    "category_attribute": "Category and Attribute Prediction Benchmark",
    "inshop": "In-shop Clothes Retrieval Benchmark",
    "consumer2shop": "Consumer-to-shop Clothes Retrieval Benchmark",
    "landmarks": "Fashion Landmark Detection Benchmark",
    # The first benchmark's 2020 `Anno_fine/`: 26 attributes, its own train/val/test.
    "category_attribute_fine": "Category and Attribute Prediction Benchmark",
}
BUILDER_CONFIGS = tuple(BENCHMARK_DIRS)
# The configs with category and attribute labels: their attribute types' names.
ATTRIBUTE_TYPES_BY_CONFIG = {
    "category_attribute": ATTRIBUTE_TYPE_NAMES,
    "category_attribute_fine": FINE_ATTRIBUTE_TYPE_NAMES,
}

BACKBONES = ("vgg16", "resnet50", "xception")
# model.landmark_head: the paper's regression, or heatmaps (models/heatmap.py).
LANDMARK_HEADS = ("regression", "heatmap")
