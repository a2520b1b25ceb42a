// A bank: one file holding many memories (the many-documents case), appended to safely and
// queried all at once.
//
// Layout (version 1, little-endian). Two 64-byte header slots at offsets 0 and 64, then records
// from offset 128, each at a multiple of 64:
//   slot:   "LINATTNB" | u32 version | u32 byte-order mark | u64 sequence | u64 committed end |
//           u64 entry count | u32 dk | u32 dv (0 until the first append) | u8 feature map |
//           u8 flags (bit 0 normalize) | u8 memory kind (0 in banks written before the relatives: linear) |
//           5 reserved | u64 XXH3-64 of the slot's first 56 bytes
//   record: "LAMENTRY" | u32 name length | u32 reserved | u64 memory bytes |
//           u64 XXH3-64 of those 24 bytes and the name | 8 reserved | name |
//           (at the next multiple of 64) a memory in the .lam format (memory_file.h)
// A slot is empty (all zero bytes: never written), valid, or corrupted. A new bank has its
// first commit (sequence 1) in slot 1 and slot 0 empty. An append truncates the file to the
// committed end, writes its records there, fsyncs, then commits by writing the slot that is not
// current (sequence + 1, new end) and fsyncing. A crash at any point leaves the previous commit
// intact: an unfinished record lies beyond the committed end and is dropped by the next append.
// Of two valid slots the higher sequence is current. When one slot is corrupted, the other is
// used only if the file ends exactly at its committed end: a newer commit would have left its
// records past that end, so nothing committed can be lost. Otherwise opening (and appending)
// fails, naming the corrupted slot: a corrupted commit is never taken for an interrupted one.
// Records before the committed end must all verify, or opening fails naming the entry. Appends
// take an exclusive lock (flock) on the file; create links a complete file into place, so it
// never replaces an existing bank.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "linattn/memory/memory.h"
#include "linattn/memory/search.h"

namespace linattn {

class Bank {
 public:
  // Creates an empty bank; fails if `path` exists.
  static void create(const std::string& path);
  // Opens and validates a bank (every record's checksum when verify is set).
  static Bank open(const std::string& path, bool verify = true);

  // Appends a memory under a new, unique name: 1 to 1024 bytes of UTF-8 text without control
  // characters (ArgumentError otherwise). All memories of
  // a bank share dk, dv, the feature map and normalisation; dtype and layout may differ.
  // Reopens the bank afterwards so that this object sees the new entry.
  void append(const std::string& name, std::span<const std::byte> memory_bytes);
  void append(const std::string& name, const Memory& memory);
  // Appends many (name, stored memory bytes) at once, committed together: all or none, with
  // one pair of fsyncs instead of one per memory.
  void append_all(const std::vector<std::pair<std::string, std::vector<std::byte>>>& entries);

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  const std::string& name(int64_t i) const { return entries_.at(static_cast<size_t>(i)).name; }
  const MemoryView& memory(int64_t i) const { return entries_.at(static_cast<size_t>(i)).view; }
  std::optional<int64_t> find(const std::string& name) const;
  const std::string& path() const { return path_; }
  int64_t key_dim() const { return dk_; }
  int64_t value_dim() const { return dv_; }
  // Bytes past the committed end (an interrupted append), overwritten by the next append.
  int64_t uncommitted_bytes() const { return uncommitted_; }

  // Answers queries [m, dk] against the selected memories (all when `selection` is empty):
  // out [selected, m, dv].
  void lookup(CView2 queries, View3 out, std::span<const int64_t> selection = {},
              const LookupOptions& options = {}) const;
  // The k memories (of all, or of the selection) scoring highest for each query [m, dk]
  // (memory/search.h); the results' indices are bank positions.
  SearchResults search(CView2 queries, const SearchOptions& options = {},
                       std::span<const int64_t> selection = {}) const;

 private:
  struct Entry {
    std::string name;
    MemoryView view;
  };
  std::string path_;
  std::shared_ptr<const void> mapping_;
  std::vector<Entry> entries_;
  int64_t dk_ = 0, dv_ = 0, uncommitted_ = 0;
};

}  // namespace linattn
