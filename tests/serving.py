"""What the serve tests share: a gallery of the tiny run's synthetic photos, and a started
Service with an index of it (tests/test_serve.py, tests/test_serve_hostile.py)."""

import io
import zipfile


def synthetic_photos(run_dir, out, count: int):
  """Writes the first `count` synthetic photos of the run's data into `out` as synthetic_<i>.jpg."""
  archive = next((run_dir / "data" / "synthetic_deepfashion").glob("Category*/Img/img.zip"))
  with zipfile.ZipFile(archive) as z:
    for i, name in enumerate(sorted(n for n in z.namelist() if n.endswith(".jpg"))[:count]):
      (out / f"synthetic_{i}.jpg").write_bytes(z.read(name))
  return out


def indexed_service(run_dir, gallery, index_folder, **options):
  """A started Service on the run's selected step, with `gallery` indexed into `index_folder`."""
  from fashionnet_jax import retrieve
  from fashionnet_jax.inference.index import Index
  from fashionnet_jax.inference.predictor import Predictor
  from fashionnet_jax.serve.service import Service

  predictor = Predictor(workdir=run_dir / "workdir")
  retrieve.build_index(predictor, str(gallery), str(index_folder), batch_size=4, log=io.StringIO())
  return Service(predictor, Index(str(index_folder)), **options).start()
