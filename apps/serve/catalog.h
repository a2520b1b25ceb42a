// The memories a server answers from: the banks named on its command line, mapped (never
// copied), addressed by name across all of them, reopened when another process appends.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "linattn/memory/bank.h"

namespace linattn::serve {

struct CatalogEntry {
  std::string name;
  int64_t bank = 0;   // position among the banks given
  int64_t index = 0;  // position in that bank
  const MemoryView* view = nullptr;
};

// One immutable state of every bank. Requests hold it while they run, so the mappings they read
// stay valid while a reload or an append builds the next one.
struct Catalog {
  std::vector<std::shared_ptr<const Bank>> banks;
  std::vector<CatalogEntry> memories;                 // bank by bank, in bank order
  std::vector<const MemoryView*> views;               // memories[i].view, for search
  std::unordered_map<std::string, int64_t> by_name;   // name -> position in memories
  int64_t mapped_bytes = 0;                           // the bank files' sizes

  const CatalogEntry* find(const std::string& name) const;
};

class Library {
 public:
  // Opens every bank (structure and record headers checked; memory checksums too when `verify`,
  // which reads every byte). A name in two banks is an error naming both.
  Library(std::vector<std::string> paths, bool verify);

  std::shared_ptr<const Catalog> current() const;
  const std::vector<std::string>& paths() const { return paths_; }

  // Reopens the banks whose files changed since they were opened (size, time or inode): entries
  // appended by another process. A bank that no longer opens, or whose new names clash with
  // another bank's, keeps its previous state; the problem is returned (one line per bank).
  std::vector<std::string> refresh();

  // Appends `memory` under `name` to the first bank this process may write (bank.h: crash-safe,
  // all or nothing), then serves it at once. Errors: Error with the reason; `exists` set when
  // the name is taken in any bank.
  struct PutOutcome {
    bool exists = false;
    std::optional<CatalogEntry> entry;
    std::shared_ptr<const Catalog> catalog;
  };
  PutOutcome put(const std::string& name, const Memory& memory);

  // The first bank that put() writes to, if any (a bank the process may write).
  std::optional<int64_t> writable_bank() const;

 private:
  struct FileStamp {
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp stamp_of(const std::string& path);
  static std::shared_ptr<const Catalog> build(std::vector<std::shared_ptr<const Bank>> banks);

  std::vector<std::string> paths_;
  bool verify_;
  mutable std::mutex mutex_;      // guards current_ and stamps_
  std::mutex write_mutex_;        // one put() at a time
  std::shared_ptr<const Catalog> current_;
  std::vector<FileStamp> stamps_;
};

}  // namespace linattn::serve
