#!/usr/bin/env python3
"""Writes the small HDF5 files of tests/data/hdf5 with h5py (libhdf5), one per
format generation, for tests/hdf5_reader_test.cc. Each holds the same objects
(groups of at most 8 links and objects of at most 8 attributes, so that the
newer formats keep them compact), so one set of checks covers every layout:

  features_v0.h5      default format: superblock 0, v1 object headers, symbol tables
  features_v108.h5    libver v108: superblock 2, v2 object headers, link messages
  features_latest.h5  libver latest: superblock 3 (chunked data uses a v4 layout)
  dense.h5            libver latest, a group with many links and an object with many
                      attributes: dense (fractal heap) storage, which tconv3d refuses

  python3 scripts/make_hdf5_fixtures.py tests/data/hdf5
"""
import sys

import h5py
import numpy as np


def write_features(path, libver):
    with h5py.File(path, "w", libver=libver) as f:
        g = f.create_group("data")
        g["contiguous_f32"] = np.arange(24, dtype="<f4").reshape(2, 3, 4)
        g.create_dataset("chunked_f32", data=np.arange(105, dtype="<f4").reshape(5, 7, 3), chunks=(2, 3, 2))
        g["big_endian_f32"] = np.arange(6, dtype=">f4") - 2.5
        g["empty_f32"] = np.zeros((0, 3), dtype="<f4")
        # Compact storage: the values sit inside the object header.
        space = h5py.h5s.create_simple((3,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        compact = h5py.h5d.create(g.id, b"compact_f32", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        compact.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array([1.5, -2.0, 3.25], dtype="<f4"))
        # Other element types, and a compressed dataset.
        t = f.create_group("types")
        t["f16"] = np.arange(4, dtype="<f2")
        t["f64"] = np.arange(4, dtype="<f8")
        t["i32"] = np.arange(4, dtype="<i4")
        t.create_dataset("deflate_f32", data=np.arange(64, dtype="<f4"), compression="gzip")
        # Attributes as Keras and tf.keras write them (8 at most: more would be dense storage).
        g = f.create_group("attrs")
        g.attrs["vlen"] = "a variable-length string"
        g.attrs["vlen_list"] = ["first", "", "third"]
        g.attrs["fixed"] = np.bytes_("fixed")
        g.attrs["fixed_list"] = np.array([b"ab", b"cde"], dtype="S3")
        g.attrs["empty_list"] = np.zeros((0,), dtype="<f4")
        g.attrs["split0"] = ["one", "two"]
        g.attrs["split1"] = ["three"]
        g.attrs["number"] = np.float32(2.0)
        # Many links to one object: a symbol table B-tree with several nodes in
        # the default format, dense link storage in the newer ones.
        target = f.create_group("target")
        many = f.create_group("many")
        for i in range(300):
            many[f"link{i:03d}"] = target


def write_dense(path):
    with h5py.File(path, "w", libver="latest") as f:
        g = f.create_group("dense_links")
        for i in range(40):
            g.create_group(f"g{i:02d}")
        a = f.create_group("dense_attributes")
        for i in range(40):
            a.attrs[f"a{i:02d}"] = np.int32(i)
        f.create_group("compact").attrs["name"] = "ok"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/hdf5"
    write_features(f"{out}/features_v0.h5", "earliest")
    write_features(f"{out}/features_v108.h5", ("v108", "v108"))
    write_features(f"{out}/features_latest.h5", "latest")
    write_dense(f"{out}/dense.h5")


if __name__ == "__main__":
    main()
