// Binary translation of hot guest code to x86-64 (DESIGN.md "Performance shape": an
// interpreter first, translation of what runs hot).
//
// How it fits the interpreter:
//  - A slot of a decoded page counts its executions (Hart::jit_probe). When one gets hot the
//    straight-line run of integer instructions starting there (RV64I without FENCE/system,
//    MUL/MULH*, loads and stores) is translated, up to and including the first branch or
//    jump, and the slot becomes a block entry (Hart::jit_entry, DecodedInsn::imm = code offset).
//  - A block works on Hart::x in memory, keeps the same instruction budget as the loop, and
//    reaches memory only through the hart's data TLB: a miss, MMIO, a store to a code page,
//    anything the TLB does not hold, leaves the block with pc at that instruction and the
//    interpreter does it (traps, P2m checks and vm_event hooks therefore stay in one place).
//  - A block ending in a branch or jump to another block entry of the same page jumps there
//    directly while budget remains (chaining), so a hot loop runs without the dispatch loop.
//  - Blocks hang off decoded pages and are dropped with them (a write to the page, FENCE.I,
//    a breakpoint). A full code area is emptied at the next slice start.
//
// Code memory: one memfd mapped twice by the main thread before any seccomp filter is in
// place (sandboxed threads may not map executable memory): the translator writes through
// the writable view, harts execute from the read+execute view, no page is both.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace vigil::riscv {

class Hart;
struct DecodedInsn;

class JitPool {
 public:
  static constexpr size_t kChunkSize = size_t{8} << 20;  // code area per hart
  static constexpr size_t kChunks = 256;                 // 2 GiB of address space, touched lazily

  // The process's pool, mapped on first use. Call once from main() before any thread
  // restricts itself; later first uses from a sandboxed thread fail (no JIT, interpreter only).
  static JitPool& instance();
  // False when translation is off (VIGIL_JIT=off in the environment) or the pool could not
  // be mapped; error() says which.
  bool available() const { return m_rw != nullptr; }
  const std::string& error() const { return m_error; }

  struct Chunk {
    uint8_t* rw = nullptr;
    const uint8_t* rx = nullptr;
    size_t size = 0;
    size_t index = 0;
  };
  std::optional<Chunk> acquire();
  void release(const Chunk& c);

 private:
  JitPool();
  std::mutex m_mutex;
  std::vector<bool> m_used;
  uint8_t* m_rw = nullptr;
  uint8_t* m_rx = nullptr;
  std::string m_error;
};

// One hart's translator and code area.
class Jit {
 public:
  // Executions of a slot before its block is translated.
  static constexpr uint8_t kHotThreshold = 24;
  static constexpr unsigned kMaxBlockInsns = 64;

  // nullptr when no code area is available.
  static std::unique_ptr<Jit> create(Hart& h);
  ~Jit();
  Jit(const Jit&) = delete;
  Jit& operator=(const Jit&) = delete;

  // Translates the block starting at byte `offset` of the guest page at `page_host` (the
  // hart's current fetch page), whose decoded slots are `slots` (for chaining). Returns the
  // code offset for DecodedInsn::imm, or -1 when the first instruction is not translatable
  // or the code area is full (then full() is true). `end` is set to the byte offset after
  // the block's last instruction.
  int32_t translate(const uint8_t* page_host, unsigned offset, DecodedInsn* slots, unsigned& end);

  // A block: returns 0 after running at least one instruction, 1 when its first instruction
  // needs the interpreter (nothing ran, pc unchanged).
  using BlockFn = int (*)(Hart*);
  BlockFn block(int32_t code_offset) const {
    return reinterpret_cast<BlockFn>(const_cast<uint8_t*>(m_chunk.rx) + code_offset);
  }
  bool full() const { return m_full; }
  // Forgets every block (the caller has dropped every slot that pointed at one).
  void reset();

  // Readable from any thread (vigild's vcpu-list).
  uint64_t blocks_translated() const { return m_blocks.load(std::memory_order_relaxed); }
  uint64_t resets() const { return m_resets.load(std::memory_order_relaxed); }
  size_t bytes_used() const;

  // Where a block finds the hart's state (byte offsets into Hart).
  struct Offsets;

 private:
  class Emitter;  // one Xbyak code generator over the whole area, blocks appended
  Jit(const JitPool::Chunk& chunk, const Offsets& offsets);
  static Offsets offsets_of(Hart& h);

  JitPool::Chunk m_chunk;
  std::unique_ptr<Emitter> m_emitter;
  bool m_full = false;
  std::atomic<uint64_t> m_blocks{0};
  std::atomic<uint64_t> m_resets{0};
};

}  // namespace vigil::riscv
