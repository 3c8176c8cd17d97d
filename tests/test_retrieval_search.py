"""Chunked / sharded top-k search against NumPy brute force."""

import math
import re

import jax
import numpy as np
import pytest

from fashionnet_jax.evaluation import search as retrieval_search


def _data(num_queries=37, num_gallery=101, dim=16, seed=0):
  rng = np.random.default_rng(seed)
  return (
      rng.normal(size=(num_queries, dim)).astype(np.float32),
      rng.normal(size=(num_gallery, dim)).astype(np.float32),
  )


@pytest.mark.parametrize(
    "query_chunk,gallery_chunk,k",
    [
        (1024, None, 10),  # one chunk each
        (7, 9, 10),  # chunks that divide neither 37 nor 101
        (5, 3, 20),  # k larger than the gallery chunk
        (37, 101, 1),
    ],
)
def test_matches_brute_force(query_chunk, gallery_chunk, k):
  queries, gallery = _data()
  ref_scores, ref_indices = retrieval_search.numpy_topk_search(queries, gallery, k)
  scores, indices = retrieval_search.topk_search(
      queries, gallery, k, query_chunk=query_chunk, gallery_chunk=gallery_chunk
  )
  assert scores.shape == indices.shape == (37, k)
  np.testing.assert_array_equal(np.asarray(indices), ref_indices)
  np.testing.assert_allclose(np.asarray(scores), ref_scores, atol=1e-5)


@pytest.mark.parametrize("gallery_chunk", [None, 5, 64])
def test_sharded_gallery_over_8_devices(gallery_chunk):
  assert jax.device_count() == 8  # tests/conftest.py forces 8 CPU devices
  mesh = jax.make_mesh((8,), ("data",))
  queries, gallery = _data(num_gallery=101)  # 101 rows: shards get padding
  ref_scores, ref_indices = retrieval_search.numpy_topk_search(queries, gallery, 25)
  scores, indices = retrieval_search.topk_search(
      queries, gallery, 25, mesh=mesh, query_chunk=6, gallery_chunk=gallery_chunk
  )
  np.testing.assert_array_equal(np.asarray(indices), ref_indices)
  np.testing.assert_allclose(np.asarray(scores), ref_scores, atol=1e-5)


def test_sharded_over_a_2d_mesh_axis():
  mesh = jax.make_mesh((4, 2), ("data", "model"))
  queries, gallery = _data(num_queries=9, num_gallery=30)
  _, ref_indices = retrieval_search.numpy_topk_search(queries, gallery, 30)
  _, indices = retrieval_search.topk_search(
      queries, gallery, 30, mesh=mesh, query_chunk=4, gallery_chunk=3
  )
  np.testing.assert_array_equal(np.asarray(indices), ref_indices)


@pytest.mark.parametrize("sharded", [False, True])
def test_ties_rank_lower_gallery_index_first(sharded):
  mesh = jax.make_mesh((8,), ("data",)) if sharded else None
  # Gallery rows take one of three directions: many exact ties.
  directions = np.eye(3, dtype=np.float32)
  gallery = directions[np.arange(40) % 3] * (1 + np.arange(40) % 2)[:, None]
  queries = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 1]], np.float32)
  scores, indices = retrieval_search.topk_search(
      queries, gallery, 20, mesh=mesh, query_chunk=2, gallery_chunk=3
  )
  g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  expected = np.argsort(-np.round(q @ g.T, 5), axis=1, kind="stable")[:, :20]
  np.testing.assert_array_equal(np.asarray(indices), expected)
  assert np.asarray(indices)[0, :3].tolist() == [0, 3, 6]


def test_whole_gallery_and_bad_k():
  queries, gallery = _data(num_queries=3, num_gallery=7)
  _, indices = retrieval_search.topk_search(queries, gallery, 7, gallery_chunk=3)
  assert sorted(np.asarray(indices)[0].tolist()) == list(range(7))  # no padding rows
  with pytest.raises(ValueError, match=r"k=8 must be in 1..7"):
    retrieval_search.topk_search(queries, gallery, 8)
  with pytest.raises(ValueError, match="need queries"):
    retrieval_search.topk_search(queries, gallery[:, :4], 1)


def test_memory_is_bounded_by_chunks():
  """The compiled search never holds a query_chunk x gallery score block."""
  num_queries, num_gallery, query_chunk, gallery_chunk = 64, 96, 16, 8
  queries, gallery = _data(num_queries, num_gallery, 4)
  lowered = retrieval_search._search.lower(
      queries.reshape(4, query_chunk, 4),
      gallery,
      k=5,
      gallery_chunk=gallery_chunk,
      num_valid=num_gallery,
      mesh=None,
      axis="data",
  )
  shapes = [
      tuple(int(d) for d in s.split(","))
      for s in re.findall(r"f32\[([\d,]+)\]", lowered.as_text(dialect="hlo"))
  ]
  inputs_and_outputs = {
      (num_gallery, 4),
      (4, query_chunk, 4),
      (4, query_chunk, 5),
      (num_gallery // gallery_chunk, gallery_chunk, 4),
  }
  largest_intermediate = max(math.prod(s) for s in shapes if s not in inputs_and_outputs)
  # One chunk's scores, or the running top-k merged with a chunk's top-k.
  assert largest_intermediate <= query_chunk * max(gallery_chunk, 2 * 5)
  assert largest_intermediate < query_chunk * num_gallery
