# Finds the HDF5 C library and defines the imported target hubble_hdf5::hdf5.
# CMake's FindHDF5 needs the C language enabled in the calling project; this small module does
# not, so a C++-only project can find_package(hubble). Honours HDF5_ROOT; knows Debian's
# serial layout (/usr/include/hdf5/serial, /usr/lib/<arch>/hdf5/serial).
if(TARGET hubble_hdf5::hdf5)
  return()
endif()
find_path(HUBBLE_HDF5_INCLUDE_DIR hdf5.h HINTS ${HDF5_ROOT} ENV HDF5_ROOT PATH_SUFFIXES include hdf5/serial include/hdf5/serial)
find_library(HUBBLE_HDF5_LIBRARY NAMES hdf5_serial hdf5 HINTS ${HDF5_ROOT} ENV HDF5_ROOT PATH_SUFFIXES lib hdf5/serial lib/hdf5/serial)
if(NOT HUBBLE_HDF5_INCLUDE_DIR OR NOT HUBBLE_HDF5_LIBRARY)
  message(FATAL_ERROR "hubble: the HDF5 C library was not found (Debian: apt-get install libhdf5-dev; elsewhere set HDF5_ROOT)")
endif()
add_library(hubble_hdf5::hdf5 UNKNOWN IMPORTED)
set_target_properties(hubble_hdf5::hdf5 PROPERTIES
  IMPORTED_LOCATION ${HUBBLE_HDF5_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${HUBBLE_HDF5_INCLUDE_DIR})
