#pragma once
// rewrite_checkpoint_epoch(path, epoch): sets a checkpoint's `epoch` dataset in place, with a
// matching checksum, as a hand-edited or damaged file would have it. save_checkpoint refuses an
// epoch outside 0..2^31-1, so tests of what *loading* does with one write it this way.
#include <hdf5.h>

#include <cstdint>
#include <string>

#include "hubble/core/error.hpp"
#include "hubble/io/checkpoint.hpp"

namespace test_support {

inline void rewrite_checkpoint_epoch(const std::string& path, std::int64_t epoch) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  HUBBLE_CHECK(file >= 0, path, ": cannot open for writing");
  const hid_t ds = H5Dopen2(file, "epoch", H5P_DEFAULT);
  const hid_t attr = ds >= 0 ? H5Aopen(ds, "checksum", H5P_DEFAULT) : -1;
  const std::uint64_t digest = hubble::checkpoint_digest(&epoch, sizeof epoch);
  const bool ok = attr >= 0 && H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &epoch) >= 0 &&
                  H5Awrite(attr, H5T_NATIVE_UINT64, &digest) >= 0;
  if (attr >= 0) H5Aclose(attr);
  if (ds >= 0) H5Dclose(ds);
  const bool closed = H5Fclose(file) >= 0;
  HUBBLE_CHECK(ok && closed, path, ": cannot rewrite its epoch");
}

}  // namespace test_support
