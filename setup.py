"""Installs vae_jax: `pip install -e .` (library, trainer, experiments) or `.[test]`."""

from setuptools import find_packages, setup

setup(
    name="vae_jax",
    version="0.1.0",
    description="PCA, autoencoders and variational autoencoders in JAX/Flax, with tests.",
    packages=find_packages(include=["vae_jax", "vae_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7",
        "flax>=0.11",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "numpy>=1.26",
        "absl-py>=2.1",
        "ml-collections>=1.0",
        "tensorboard>=2.15",
        "matplotlib>=3.8",
        "scikit-learn>=1.4",
        # Grain: the JAX ecosystem's data loader (index-based random access, threads), for streamed sources.
        "grain>=0.2.10",
        "Pillow>=10",  # decodes folders of PNG/JPEG files and resizes images (vae_jax/data/image_ops.py)
    ],
    extras_require={
        # tensorflow-datasets route for grey-level MNIST and friends (needs network to download).
        "tfds": ["tensorflow-cpu>=2.16", "tensorflow-datasets>=4.9.6", "importlib_resources"],
        # ruff: the formatter CI checks; selenium: drives headless Chromium in tests/test_lecture_page.py
        # (Chromium itself comes from the distribution: apt-get install -y chromium chromium-driver).
        "test": ["pytest>=8", "scipy>=1.11", "mpmath>=1.3", "chex>=0.1.87", "ruff==0.17.6", "selenium>=4.11"],
    },
)
