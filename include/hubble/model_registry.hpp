#pragma once
// The networks hubble::Model::load (model.hpp) finds with no call from the user. Each is
// registered by its own header, beside its definition, with the names of its classes:
//
//   template <>
//   struct builtin_model<0> {  // in paper_net.hpp
//     using net = PaperNet;
//     static constexpr const auto& class_names = data::galaxy10_class_names;  // a std::array of const char*
//   };
//
// This header only declares the slots, so a network's header stays light: the checkpoint and
// HDF5 code that a Model needs is instantiated only where model.hpp is included (it looks at
// every slot and builds a loader for each network it finds there). Slots are numbered because
// C++ cannot list the specialisations of a template; taking one twice is a compile error
// (redefinition). They are for hubble's own networks, which model.hpp includes, so every file
// that includes model.hpp sees the same ones; register any other network at run time with
// hubble::Model::register_architecture<Net>(class_names).
//   slot 0: PaperNet (paper_net.hpp)      slot 1: ImprovedNet (improved_net.hpp)
//   slot 2: D4Net (equivariant_net.hpp)
namespace hubble {

inline constexpr int builtin_model_slots = 8;

// Specialised by a network's header; the primary template is never defined (an empty slot).
template <int Slot>
struct builtin_model;

}  // namespace hubble
