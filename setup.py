"""fashionnet_jax: FashionNet (DeepFashion, CVPR 2016) in JAX/Flax NNX."""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.6",
    "flax>=0.11",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "tensorflow-datasets>=4.9.8",
    "array-record>=0.7",
    "grain>=0.2.10",
    "clu>=0.0.12",
    # clu's TensorBoard writer runs on TF's summary ops.
    "tensorflow-cpu>=2.16",
    "tensorboard",
    "ml-collections>=1.0",
    "numpy>=1.26",
    "pillow>=10",
    "absl-py",
    "etils[epath,epy]",
    "importlib_resources",  # tfds by-path builders need it
    "matplotlib",
    "tqdm",
]

EXTRAS = {
    # What `tfds build` needs on top of the runtime (tensorflow-cpu is already there for clu).
    "data": ["apache-beam>=2.60", "mlcroissant>=1.0"],
    # ImageNet weight import from torchvision .pth files (keras .h5 goes through h5py).
    "torch": ["torch>=2.1", "h5py"],
    # scikit-image ships the public-domain photos the tests use without DeepFashion's (tests/host.py).
    # The formatter and linter .ci/run checks (pinned: a new release may format differently).
    "lint": ["pyink==26.5.1", "ruff==0.17.5"],
    "test": ["pytest>=8", "pytest-xdist", "h5py", "scikit-image"],
    # Deviceless TPU compiles on a CPU (`hlo_audit --target=tpu-v3-8`, tests/test_tpu_audit.py):
    # jax's own `tpu` extra: the libtpu its installed version pins (jax 0.10.2: libtpu 0.0.42.*,
    # a 213 MB wheel). No TPU needed: libtpu compiles for a slice on the CPU.
    "tpu-audit": ["jax[tpu]"],
    # `python -m fashionnet_jax.serve` / `.export` and their tests (the browser test drives
    # Debian's chromium + chromedriver through selenium; httpx is FastAPI's TestClient).
    "serve": [
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "python-multipart>=0.0.9",
        "httpx",
        "orbax-export>=0.0.6",
        "selenium>=4.20",
    ],
}

setuptools.setup(
    name="fashionnet_jax",
    version="0.1.0",
    description="FashionNet (DeepFashion, CVPR 2016) in JAX/Flax NNX for TPUs and GPUs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["fashionnet_jax", "fashionnet_jax.*"]),
    package_data={"fashionnet_jax.serve": ["static/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
