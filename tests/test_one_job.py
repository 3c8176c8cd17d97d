"""One implementation per job: the gallery ranker of retrieve and serve, absl flag parsing."""

import json

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from fashionnet_jax import cli
from fashionnet_jax.inference.index import Index


def test_the_ranker_breaks_ties_to_the_lower_entry_and_its_prefixes_agree(tmp_path):
  # Entries 1, 3 and 4 tie with the query; serve slices its top max_k, retrieve asks for k.
  rows = np.array([[0, 1], [1, 0], [0.6, 0.8], [1, 0], [1, 0], [-1, 0]], np.float32)
  np.save(tmp_path / "embeddings.npy", rows)
  (tmp_path / "paths.txt").write_text("".join(f"{i}.jpg\n" for i in range(len(rows))))
  (tmp_path / "meta.json").write_text(json.dumps({"complete": True}))
  index = Index(str(tmp_path))
  scores, numbers = index.nearest(np.array([[2.0, 0.0]]), 5)
  np.testing.assert_array_equal(numbers, [[1, 3, 4, 2, 0]])
  np.testing.assert_allclose(scores, [[1, 1, 1, 0.6, 0]], atol=1e-6)
  for k in (1, 2, 3):
    np.testing.assert_array_equal(index.nearest(np.array([[2.0, 0.0]]), k)[1], numbers[:, :k])


def test_a_config_file_that_does_not_load_under_an_override_is_one_line(tmp_path, capsys):
  fv = flags.FlagValues()
  argv = ["x", f"--config={tmp_path}/missing.py", "--config.seed=1"]
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, sys_argv=argv)
  with pytest.raises(SystemExit) as exit_info:
    cli.parse_absl_flags(argv, fv)
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == (
      f"error: --config: cannot load the config: No such file or "
      f"directory: '{tmp_path}/missing.py'\n"
  )
