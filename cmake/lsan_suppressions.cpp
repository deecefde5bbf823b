// Compiled into every program of a HUBBLE_SANITIZE build (cmake/hubbleSanitize.cmake), so the
// suppressions apply however the program is started (ctest, a script, by hand): LeakSanitizer
// reads this function at exit. Debian 12's libhdf5 1.10.8 never frees a 56-byte block on some
// error paths of corrupt files (H5FL_blk_malloc under H5Aexists_by_name); we cannot fix the
// library, and hubble's own leaks — allocation stacks without a libhdf5 frame — are still
// reported. tests/fuzz/hdf5_leaks.supp is the same list for the fuzz targets.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libhdf5_serial.so\n"
         "leak:libhdf5.so\n";
}
