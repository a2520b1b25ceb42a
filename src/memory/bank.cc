#include "linattn/memory/bank.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <set>
#include <string>
#include <unordered_set>

#include "core/checks.h"
#include "core/file_io.h"
#include "linattn/core/error.h"
#include "kernels/parallel.h"
#include "linattn/memory/memory_file.h"

namespace linattn {

using detail::extent;
namespace {

constexpr char kBankMagic[8] = {'L', 'I', 'N', 'A', 'T', 'T', 'N', 'B'};
constexpr char kRecordMagic[8] = {'L', 'A', 'M', 'E', 'N', 'T', 'R', 'Y'};
constexpr uint32_t kBankVersion = 1;
constexpr uint32_t kByteOrderMark = 0x01020304u;
constexpr int64_t kSlotBytes = 64, kFirstRecord = 128, kRecordHeader = 40, kMaxName = 1024;

int64_t align64(int64_t x) { return (x + 63) / 64 * 64; }

// Why `name` cannot name a bank entry, or empty: names are printed and listed as JSON, so they
// must be valid UTF-8 (shortest forms, no surrogates) without control characters.
std::string name_problem(const std::string& name) {
  if (name.empty() || static_cast<int64_t>(name.size()) > kMaxName)
    return "must have 1 to " + std::to_string(kMaxName) + " bytes";
  const auto* p = reinterpret_cast<const unsigned char*>(name.data());
  const size_t n = name.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    if (c < 0x20 || c == 0x7f) return "must not contain control characters (byte " + std::to_string(i) + ")";
    if (c < 0x80) { ++i; continue; }
    const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    uint32_t cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0f : c & 0x1f;
    bool ok = len != 0 && c <= 0xf4 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xc0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    const uint32_t smallest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (!ok || cp < smallest[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
      return "is not valid UTF-8 text (byte " + std::to_string(i) + ")";
    i += len;
  }
  return "";
}

template <typename T>
void put(std::byte* p, T v) { std::memcpy(p, &v, sizeof(T)); }
template <typename T>
T get(const std::byte* p) { T v; std::memcpy(&v, p, sizeof(T)); return v; }

struct Slot {
  int position = 1;  // 0 or 1: where the slot lies (at position * kSlotBytes)
  uint64_t sequence = 0, end = kFirstRecord, count = 0;
  int64_t dk = 0, dv = 0;
  uint8_t feature_map = 0, flags = 0;
  uint8_t kind = 0;  // MemoryKind of every entry (byte 50; 0 in banks from before the relatives)
};

std::array<std::byte, kSlotBytes> encode_slot(const Slot& s) {
  std::array<std::byte, kSlotBytes> b{};
  std::memcpy(b.data(), kBankMagic, 8);
  put<uint32_t>(b.data() + 8, kBankVersion);
  put<uint32_t>(b.data() + 12, kByteOrderMark);
  put<uint64_t>(b.data() + 16, s.sequence);
  put<uint64_t>(b.data() + 24, s.end);
  put<uint64_t>(b.data() + 32, s.count);
  put<uint32_t>(b.data() + 40, static_cast<uint32_t>(s.dk));
  put<uint32_t>(b.data() + 44, static_cast<uint32_t>(s.dv));
  b[48] = std::byte{s.feature_map};
  b[49] = std::byte{s.flags};
  b[50] = std::byte{s.kind};
  put<uint64_t>(b.data() + 56, XXH3_64bits(b.data(), 56));
  return b;
}

// A header slot is in one of three states. Empty (every byte zero): never written, as slot 1 of
// a new bank. Valid: magic, checksum and fields check out. Corrupted: anything else.
enum class SlotState { empty, valid, corrupted };

SlotState decode_slot(const std::byte* b, Slot& s, std::string& why) {
  if (std::all_of(b, b + kSlotBytes, [](std::byte x) { return x == std::byte{0}; })) return SlotState::empty;
  if (std::memcmp(b, kBankMagic, 8) != 0) { why = "not a linattn bank (wrong magic)"; return SlotState::corrupted; }
  if (get<uint64_t>(b + 56) != XXH3_64bits(b, 56)) { why = "header checksum mismatch"; return SlotState::corrupted; }
  if (get<uint32_t>(b + 8) != kBankVersion) {
    why = "bank format version " + std::to_string(get<uint32_t>(b + 8)) + " is not supported";
    return SlotState::corrupted;
  }
  if (get<uint32_t>(b + 12) != kByteOrderMark) { why = "wrong byte order mark"; return SlotState::corrupted; }
  s.sequence = get<uint64_t>(b + 16);
  s.end = get<uint64_t>(b + 24);
  s.count = get<uint64_t>(b + 32);
  s.dk = get<uint32_t>(b + 40);
  s.dv = get<uint32_t>(b + 44);
  s.feature_map = static_cast<uint8_t>(b[48]);
  s.flags = static_cast<uint8_t>(b[49]);
  s.kind = static_cast<uint8_t>(b[50]);
  // end and count stay far below 2^62, so that every offset computed from them fits in int64_t.
  if (s.sequence == 0 || s.dk > (1 << 20) || s.dv > (1 << 20) || s.feature_map > 2 || s.flags > 1 || s.kind > 3 ||
      s.end < static_cast<uint64_t>(kFirstRecord) || s.end % 64 != 0 || s.end > (uint64_t{1} << 62) ||
      s.count > s.end / 64) {
    why = "implausible header fields";
    return SlotState::corrupted;
  }
  return SlotState::valid;
}

// The current slot of a bank file. An append writes its records past the committed end, then
// commits them in the other slot; a later append first truncates the file to the committed end.
// So when one slot is corrupted, the other slot is current only if it provably loses nothing:
// the file ends at its committed end (a newer commit would have left its records past that
// end). Otherwise the corrupted slot may hold the newest commit, and opening fails, naming it.
Slot current_slot(std::span<const std::byte> file, const std::string& path) {
  if (static_cast<int64_t>(file.size()) < kFirstRecord)
    throw FormatError(path + ": truncated: " + std::to_string(file.size()) + " bytes, a bank header has " +
                      std::to_string(kFirstRecord));
  Slot slot[2];
  std::string why[2];
  const SlotState state[2] = {decode_slot(file.data(), slot[0], why[0]),
                              decode_slot(file.data() + kSlotBytes, slot[1], why[1])};
  slot[0].position = 0;
  slot[1].position = 1;
  if (state[0] != SlotState::valid && state[1] != SlotState::valid) {
    if (state[0] == SlotState::corrupted && std::memcmp(file.data(), kBankMagic, 8) != 0)
      throw FormatError(path + ": not a linattn bank (wrong magic)");
    throw FormatError(path + ": no valid header slot (slot 0: " + (state[0] == SlotState::empty ? "empty" : why[0]) +
                      ", slot 1: " + (state[1] == SlotState::empty ? "empty" : why[1]) + ")");
  }
  if (state[0] == SlotState::valid && state[1] == SlotState::valid)
    return slot[0].sequence >= slot[1].sequence ? slot[0] : slot[1];
  const int good = state[0] == SlotState::valid ? 0 : 1, bad = 1 - good;
  if (state[bad] == SlotState::corrupted && file.size() != slot[good].end)
    throw FormatError(path + ": header slot " + std::to_string(bad) + " is corrupted (" + why[bad] + ") and " +
                      std::to_string(file.size() - slot[good].end) + " bytes lie past slot " + std::to_string(good) +
                      "'s committed end: they may hold the newest committed entries, so the bank is not opened");
  return slot[good];
}

struct RecordSpan {
  std::string name;
  int64_t memory_offset, memory_bytes, next;
};

// Reads the record at `off` (which must lie below `end`); throws naming the entry.
RecordSpan read_record(std::span<const std::byte> file, int64_t off, int64_t end, int64_t index,
                       const std::string& path) {
  const std::string where = path + ": bank entry " + std::to_string(index);
  if (off + kRecordHeader > end) throw FormatError(where + ": truncated record header");
  const std::byte* r = file.data() + off;
  if (std::memcmp(r, kRecordMagic, 8) != 0) throw FormatError(where + ": corrupted (wrong record magic)");
  const auto name_len = static_cast<int64_t>(get<uint32_t>(r + 8));
  const auto mem_bytes = get<uint64_t>(r + 16);
  if (name_len < 1 || name_len > kMaxName) throw FormatError(where + ": corrupted (name length " + std::to_string(name_len) + ")");
  if (off + kRecordHeader + name_len > end) throw FormatError(where + ": truncated name");
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, r, 24);
  XXH3_64bits_update(st, r + kRecordHeader, static_cast<size_t>(name_len));
  const uint64_t sum = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (sum != get<uint64_t>(r + 24)) throw FormatError(where + ": corrupted (record checksum mismatch)");
  const int64_t mem_off = align64(off + kRecordHeader + name_len);
  if (mem_bytes > static_cast<uint64_t>(end) || mem_off + static_cast<int64_t>(mem_bytes) > end)
    throw FormatError(where + ": memory extends past the committed end");
  RecordSpan rec{std::string(reinterpret_cast<const char*>(r + kRecordHeader), static_cast<size_t>(name_len)),
                 mem_off, static_cast<int64_t>(mem_bytes), align64(mem_off + static_cast<int64_t>(mem_bytes))};
  return rec;
}

}  // namespace

void Bank::create(const std::string& path) {
  // Slot 1 holds the first commit and slot 0 stays empty, so the first append writes slot 0
  // and never the bank's only valid slot.
  std::vector<std::byte> buf(kFirstRecord, std::byte{0});
  Slot s;
  s.sequence = 1;
  const auto slot = encode_slot(s);
  std::memcpy(buf.data() + kSlotBytes, slot.data(), kSlotBytes);
  detail::write_file_exclusive(path, buf);
}

Bank Bank::open(const std::string& path, bool verify) {
  detail::MappedFile file = detail::map_file(path, /*random_access=*/true);
  const Slot s = current_slot(file.bytes, path);
  const auto size = static_cast<int64_t>(file.bytes.size());
  if (s.end > file.bytes.size())
    throw FormatError(path + ": truncated: the header commits " + std::to_string(s.end) + " bytes, the file has " +
                      std::to_string(size));
  Bank bank;
  bank.path_ = path;
  bank.mapping_ = file.owner;
  bank.dk_ = s.dk;
  bank.dv_ = s.dv;
  bank.uncommitted_ = size - static_cast<int64_t>(s.end);
  std::unordered_set<std::string> names;
  int64_t off = kFirstRecord;
  for (uint64_t i = 0; i < s.count; ++i) {
    const RecordSpan rec = read_record(file.bytes, off, static_cast<int64_t>(s.end), static_cast<int64_t>(i), path);
    const std::string source = path + ": bank entry " + std::to_string(i) + " '" + rec.name + "'";
    const auto mem = file.bytes.subspan(static_cast<size_t>(rec.memory_offset), static_cast<size_t>(rec.memory_bytes));
    MemoryView view = parse_memory(mem, file.owner, source, verify);
    if (view.info().config.key_dim != s.dk || view.info().config.value_dim != s.dv)
      throw FormatError(source + ": widths differ from the bank's");
    if (!names.insert(rec.name).second) throw FormatError(source + ": duplicate name");
    bank.entries_.push_back({rec.name, std::move(view)});
    off = rec.next;
  }
  if (off != static_cast<int64_t>(s.end)) throw FormatError(path + ": records do not end at the committed end");
  return bank;
}

std::optional<int64_t> Bank::find(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return static_cast<int64_t>(i);
  return std::nullopt;
}

void Bank::append(const std::string& name, const Memory& memory) { append(name, serialize(memory)); }

void Bank::append(const std::string& name, std::span<const std::byte> memory_bytes) {
  const std::vector<std::byte> bytes(memory_bytes.begin(), memory_bytes.end());
  append_all({{name, bytes}});
}

void Bank::append_all(const std::vector<std::pair<std::string, std::vector<std::byte>>>& entries) {
  const detail::Checks c("linattn::Bank::append");
  if (entries.empty()) return;
  std::set<std::string> names;
  for (const auto& [name, memory_bytes] : entries) {
    if (const std::string why = name_problem(name); !why.empty()) c.fail("name", why);
    if (!names.insert(name).second) c.fail("name", "'" + name + "' appears twice in one append");
    parse_memory(memory_bytes, nullptr, "memory to append '" + name + "'");
  }

  const int fd = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw FormatError(detail::system_error_text("cannot open", path_));
  struct Closer { int fd; ~Closer() { ::close(fd); } } closer{fd};
  if (::flock(fd, LOCK_EX) != 0) throw FormatError(detail::system_error_text("cannot lock", path_));
  // Under the lock, re-read the bank: another process may have appended since we opened it.
  Bank now = open(path_, false);
  const Slot s = current_slot(detail::map_file(path_).bytes, path_);
  Slot n = s;
  std::vector<std::byte> records;
  const int64_t start = static_cast<int64_t>(s.end);
  int64_t off = start;
  for (const auto& [name, memory_bytes] : entries) {
    if (now.find(name)) c.fail("name", "'" + name + "' is already in the bank");
    const MemoryConfig mc = parse_memory(memory_bytes, nullptr, "memory to append").info().config;
    if (n.dk != 0 && (mc.key_dim != n.dk || mc.value_dim != n.dv || static_cast<uint8_t>(mc.feature_map) != n.feature_map ||
                      mc.normalize != static_cast<bool>(n.flags & 1) || static_cast<uint8_t>(mc.kind) != n.kind))
      c.fail("memory", "'" + name + "' does not match the bank (dk " + std::to_string(n.dk) + ", dv " +
                           std::to_string(n.dv) + ", feature map, normalisation and kind must agree)");
    n.dk = mc.key_dim;
    n.dv = mc.value_dim;
    n.feature_map = static_cast<uint8_t>(mc.feature_map);
    n.flags = mc.normalize ? 1 : 0;
    n.kind = static_cast<uint8_t>(mc.kind);
    // The record, laid out past the committed end.
    const int64_t mem_off = align64(off + kRecordHeader + static_cast<int64_t>(name.size()));
    const int64_t next = align64(mem_off + static_cast<int64_t>(memory_bytes.size()));
    records.resize(static_cast<size_t>(next - start), std::byte{0});
    std::byte* rec = records.data() + (off - start);
    std::memcpy(rec, kRecordMagic, 8);
    put<uint32_t>(rec + 8, static_cast<uint32_t>(name.size()));
    put<uint64_t>(rec + 16, memory_bytes.size());
    std::memcpy(rec + kRecordHeader, name.data(), name.size());
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, rec, 24);
    XXH3_64bits_update(st, name.data(), name.size());
    put<uint64_t>(rec + 24, XXH3_64bits_digest(st));
    XXH3_freeState(st);
    std::memcpy(rec + (mem_off - off), memory_bytes.data(), memory_bytes.size());
    off = next;
    ++n.count;
  }
  detail::truncate_file(fd, start, path_);  // drop any uncommitted tail first
  detail::pwrite_all(fd, records, start, path_);
  detail::fsync_file(fd, path_);

  // Commit every record at once: the other slot, one sequence further.
  n.sequence = s.sequence + 1;
  n.end = static_cast<uint64_t>(off);
  n.position = 1 - s.position;
  const auto slot = encode_slot(n);
  detail::pwrite_all(fd, slot, n.position * kSlotBytes, path_);
  detail::fsync_file(fd, path_);
  *this = open(path_, true);
}

void Bank::lookup(CView2 queries, View3 out, std::span<const int64_t> selection,
                  const LookupOptions& options) const {
  const detail::Checks c("linattn::Bank::lookup");
  const int64_t n = selection.empty() ? size() : static_cast<int64_t>(selection.size());
  for (size_t i = 0; i < selection.size(); ++i)
    if (selection[i] < 0 || selection[i] >= size())
      c.fail("selection", "entry " + std::to_string(i) + " is " + std::to_string(selection[i]) +
                              ", the bank has " + std::to_string(size()) + " memories");
  c.view("queries", queries, false);
  c.view("out", out, true);
  c.dim("out", out, 0, n, "the number of selected memories");
  c.dim("out", out, 1, queries.shape[0], "the query count");
  if (n == 0) return;
  c.dim("queries", queries, 1, dk_, "the bank's key width dk");
  c.dim("out", out, 2, dv_, "the bank's value width dv");
  c.apart({extent("out", out)}, {extent("queries", queries)});
  kernels::parallel_for(n, [&](int64_t j, int) {
    const int64_t i = selection.empty() ? j : selection[static_cast<size_t>(j)];
    View2 o(&out(j, 0, 0), {out.shape[1], out.shape[2]}, {out.stride[1], out.stride[2]});
    entries_[static_cast<size_t>(i)].view.lookup(queries, o, options);
  });
}

SearchResults Bank::search(CView2 queries, const SearchOptions& options, std::span<const int64_t> selection) const {
  const detail::Checks c("linattn::Bank::search");
  std::vector<const MemoryView*> views;
  views.reserve(selection.empty() ? entries_.size() : selection.size());
  for (size_t i = 0; i < selection.size(); ++i) {
    if (selection[i] < 0 || selection[i] >= size())
      c.fail("selection", "entry " + std::to_string(i) + " is " + std::to_string(selection[i]) + ", the bank has " +
                              std::to_string(size()) + " memories");
    views.push_back(&entries_[static_cast<size_t>(selection[i])].view);
  }
  if (selection.empty())
    for (const Entry& e : entries_) views.push_back(&e.view);
  SearchResults r = linattn::search(views, queries, options);
  if (!selection.empty())
    for (int64_t& i : r.index) i = selection[static_cast<size_t>(i)];
  return r;
}

}  // namespace linattn
