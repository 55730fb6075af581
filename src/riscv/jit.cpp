// x86-64 translation of hot RV64 integer code (see jit.h for how it fits the interpreter).
// Code is generated with Xbyak. Register use inside a block: rdi = Hart* (the argument),
// rax, rcx, rdx scratch; guest registers live in Hart::x. No stack frame, no calls: a block
// returns to its caller or jumps to another block of the same page.
#include "riscv/jit.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xbyak/xbyak.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "riscv/decode.h"
#include "riscv/hart.h"

namespace vigil::riscv {

// ---------------------------------------------------------------------------------------
// The pool

JitPool& JitPool::instance() {
  static JitPool pool;
  return pool;
}

JitPool::JitPool() {
  if (const char* v = std::getenv("VIGIL_JIT"); v != nullptr && std::string_view(v) == "off") {
    m_error = "binary translation is off (VIGIL_JIT=off)";
    return;
  }
  const size_t total = kChunkSize * kChunks;
  const int fd = ::memfd_create("vigil-jit", MFD_CLOEXEC);
  if (fd < 0) {
    m_error = std::string("cannot create the JIT code memory (memfd_create): ") + std::strerror(errno);
    return;
  }
  void* rw = MAP_FAILED;
  void* rx = MAP_FAILED;
  if (::ftruncate(fd, static_cast<off_t>(total)) == 0) {
    rw = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    rx = ::mmap(nullptr, total, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_NORESERVE, fd, 0);
  }
  const int saved = errno;
  ::close(fd);
  if (rw == MAP_FAILED || rx == MAP_FAILED) {
    if (rw != MAP_FAILED) ::munmap(rw, total);
    if (rx != MAP_FAILED) ::munmap(rx, total);
    m_error = std::string("cannot map the JIT code memory: ") + std::strerror(saved);
    return;
  }
  m_rw = static_cast<uint8_t*>(rw);
  m_rx = static_cast<uint8_t*>(rx);
  m_used.assign(kChunks, false);
}

std::optional<JitPool::Chunk> JitPool::acquire() {
  if (!available()) return std::nullopt;
  std::lock_guard lock(m_mutex);
  for (size_t i = 0; i < kChunks; ++i) {
    if (m_used[i]) continue;
    m_used[i] = true;
    return Chunk{m_rw + i * kChunkSize, m_rx + i * kChunkSize, kChunkSize, i};
  }
  return std::nullopt;
}

void JitPool::release(const Chunk& c) {
  // Give the pages back to the host (the memfd keeps them otherwise).
  ::madvise(c.rw, kChunkSize, MADV_REMOVE);
  std::lock_guard lock(m_mutex);
  m_used[c.index] = false;
}

// ---------------------------------------------------------------------------------------
// What the translator knows of each instruction, by the decode table's mnemonic.

namespace {

enum class Op : uint8_t {
  kNone,
  kAdd, kSub, kSll, kSlt, kSltu, kXor, kSrl, kSra, kOr, kAnd,
  kAddi, kSlti, kSltiu, kXori, kOri, kAndi, kSlli, kSrli, kSrai,
  kAddw, kSubw, kSllw, kSrlw, kSraw, kAddiw, kSlliw, kSrliw, kSraiw,
  kMul, kMulh, kMulhu, kMulw,
  kLui, kAuipc, kJal, kJalr,
  kBeq, kBne, kBlt, kBge, kBltu, kBgeu,
  kLb, kLh, kLw, kLd, kLbu, kLhu, kLwu,
  kSb, kSh, kSw, kSd,
};

struct OpName {
  std::string_view name;
  Op op;
};

constexpr OpName kOps[] = {
    {"add", Op::kAdd},     {"sub", Op::kSub},     {"sll", Op::kSll},     {"slt", Op::kSlt},
    {"sltu", Op::kSltu},   {"xor", Op::kXor},     {"srl", Op::kSrl},     {"sra", Op::kSra},
    {"or", Op::kOr},       {"and", Op::kAnd},     {"addi", Op::kAddi},   {"slti", Op::kSlti},
    {"sltiu", Op::kSltiu}, {"xori", Op::kXori},   {"ori", Op::kOri},     {"andi", Op::kAndi},
    {"slli", Op::kSlli},   {"srli", Op::kSrli},   {"srai", Op::kSrai},   {"addw", Op::kAddw},
    {"subw", Op::kSubw},   {"sllw", Op::kSllw},   {"srlw", Op::kSrlw},   {"sraw", Op::kSraw},
    {"addiw", Op::kAddiw}, {"slliw", Op::kSlliw}, {"srliw", Op::kSrliw}, {"sraiw", Op::kSraiw},
    {"mul", Op::kMul},     {"mulh", Op::kMulh},   {"mulhu", Op::kMulhu}, {"mulw", Op::kMulw},
    {"lui", Op::kLui},     {"auipc", Op::kAuipc}, {"jal", Op::kJal},     {"jalr", Op::kJalr},
    {"beq", Op::kBeq},     {"bne", Op::kBne},     {"blt", Op::kBlt},     {"bge", Op::kBge},
    {"bltu", Op::kBltu},   {"bgeu", Op::kBgeu},   {"lb", Op::kLb},       {"lh", Op::kLh},
    {"lw", Op::kLw},       {"ld", Op::kLd},       {"lbu", Op::kLbu},     {"lhu", Op::kLhu},
    {"lwu", Op::kLwu},     {"sb", Op::kSb},       {"sh", Op::kSh},       {"sw", Op::kSw},
    {"sd", Op::kSd},
};

Op op_of(std::string_view name) {
  for (const OpName& o : kOps) {
    if (o.name == name) return o.op;
  }
  return Op::kNone;
}

// decode() names the instruction by its handler; the translator's Op for each handler,
// built once from the decode tables. A handler shared by two mnemonics that would translate
// differently is left to the interpreter.
Op op_for(Handler fn) {
  static const std::unordered_map<uintptr_t, Op> ops = [] {
    std::unordered_map<uintptr_t, Op> m;
    for (const OpcodeEntry& e : all_opcodes()) {
      const Op op = op_of(e.name);
      const auto [it, fresh] = m.emplace(reinterpret_cast<uintptr_t>(e.fn), op);
      if (!fresh && it->second != op) it->second = Op::kNone;
    }
    return m;
  }();
  const auto it = ops.find(reinterpret_cast<uintptr_t>(fn));
  return it != ops.end() ? it->second : Op::kNone;
}

bool ends_block(Op op) { return op == Op::kJal || op == Op::kJalr || (op >= Op::kBeq && op <= Op::kBgeu); }

struct Item {
  Op op;
  DecodedInsn d;
  unsigned offset;  // byte offset in the page
};

}  // namespace

struct Jit::Offsets {
  int32_t x = 0, pc = 0, budget = 0, dtlb_read = 0, dtlb_write = 0;
};

Jit::Offsets Jit::offsets_of(Hart& h) {
  const auto at = [&h](const void* p) {
    return static_cast<int32_t>(static_cast<const char*>(p) - reinterpret_cast<const char*>(&h));
  };
  Offsets o;
  o.x = at(&h.x[0]);
  o.pc = at(&h.pc);
  o.budget = at(&h.m_budget);
  o.dtlb_read = at(&h.m_dtlb_read);
  o.dtlb_write = at(&h.m_dtlb_write);
  return o;
}

std::unique_ptr<Jit> Jit::create(Hart& h) {
  auto chunk = JitPool::instance().acquire();
  if (!chunk) return nullptr;
  if (h.jit_code_limit != 0 && h.jit_code_limit < chunk->size) chunk->size = h.jit_code_limit;
  return std::unique_ptr<Jit>(new Jit(*chunk, offsets_of(h)));
}

using namespace Xbyak::util;

class Jit::Emitter : public Xbyak::CodeGenerator {
 public:
  Emitter(uint8_t* buf, size_t size, const Jit::Offsets& o, const uint8_t* rx_base, uint64_t entry_fn)
      : CodeGenerator(size, buf), m_o(o), m_rx(rx_base), m_entry_fn(entry_fn) {
    // The operands of guest registers, made once (building an Xbyak address is not free).
    m_x.reserve(33);
    m_x32.reserve(33);
    for (int32_t r = 0; r < 33; ++r) {
      m_x.push_back(qword[rdi + (m_o.x + 8 * r)]);
      m_x32.push_back(dword[rdi + (m_o.x + 8 * r)]);
    }
  }

  // Appends the block for items[0..n) starting at byte `entry_offset` of the page whose
  // slots are `slots`.
  void emit(const Item* items, size_t n, uint64_t entry_offset, DecodedInsn* slots) {
    m_start = entry_offset;
    m_slots = slots;
    std::vector<std::pair<Xbyak::Label, size_t>> misses;  // TLB misses: label, item index
    misses.reserve(n);
    size_t i = 0;
    for (; i < n; ++i) {
      const Item& it = items[i];
      const DecodedInsn& d = it.d;
      const int64_t here = static_cast<int64_t>(it.offset) - static_cast<int64_t>(m_start);
      const int64_t next = here + d.len();
      switch (it.op) {
        case Op::kAdd: rr([&] { add(rax, x(d.rs2)); }, d); break;
        case Op::kSub: rr([&] { sub(rax, x(d.rs2)); }, d); break;
        case Op::kXor: rr([&] { xor_(rax, x(d.rs2)); }, d); break;
        case Op::kOr: rr([&] { or_(rax, x(d.rs2)); }, d); break;
        case Op::kAnd: rr([&] { and_(rax, x(d.rs2)); }, d); break;
        case Op::kMul: rr([&] { imul(rax, x(d.rs2)); }, d); break;
        case Op::kSlt: rr([&] { cmp(rax, x(d.rs2)); setl(al); movzx(eax, al); }, d); break;
        case Op::kSltu: rr([&] { cmp(rax, x(d.rs2)); setb(al); movzx(eax, al); }, d); break;
        case Op::kSll: rr([&] { mov(rcx, x(d.rs2)); shl(rax, cl); }, d); break;
        case Op::kSrl: rr([&] { mov(rcx, x(d.rs2)); shr(rax, cl); }, d); break;
        case Op::kSra: rr([&] { mov(rcx, x(d.rs2)); sar(rax, cl); }, d); break;
        case Op::kMulh: rr([&] { imul(x(d.rs2)); mov(rax, rdx); }, d); break;
        case Op::kMulhu: rr([&] { mul(x(d.rs2)); mov(rax, rdx); }, d); break;
        case Op::kAddi: rr([&] { add(rax, d.imm); }, d); break;
        case Op::kXori: rr([&] { xor_(rax, d.imm); }, d); break;
        case Op::kOri: rr([&] { or_(rax, d.imm); }, d); break;
        case Op::kAndi: rr([&] { and_(rax, d.imm); }, d); break;
        case Op::kSlti: rr([&] { cmp(rax, d.imm); setl(al); movzx(eax, al); }, d); break;
        case Op::kSltiu: rr([&] { cmp(rax, d.imm); setb(al); movzx(eax, al); }, d); break;
        case Op::kSlli: rr([&] { shl(rax, d.imm); }, d); break;
        case Op::kSrli: rr([&] { shr(rax, d.imm); }, d); break;
        case Op::kSrai: rr([&] { sar(rax, d.imm); }, d); break;
        case Op::kAddw: rr_w([&] { add(eax, x32(d.rs2)); }, d); break;
        case Op::kSubw: rr_w([&] { sub(eax, x32(d.rs2)); }, d); break;
        case Op::kMulw: rr_w([&] { imul(eax, x32(d.rs2)); }, d); break;
        case Op::kSllw: rr_w([&] { mov(ecx, x32(d.rs2)); shl(eax, cl); }, d); break;
        case Op::kSrlw: rr_w([&] { mov(ecx, x32(d.rs2)); shr(eax, cl); }, d); break;
        case Op::kSraw: rr_w([&] { mov(ecx, x32(d.rs2)); sar(eax, cl); }, d); break;
        case Op::kAddiw: rr_w([&] { add(eax, d.imm); }, d); break;
        case Op::kSlliw: rr_w([&] { shl(eax, d.imm); }, d); break;
        case Op::kSrliw: rr_w([&] { shr(eax, d.imm); }, d); break;
        case Op::kSraiw: rr_w([&] { sar(eax, d.imm); }, d); break;
        case Op::kLui: mov(x(d.rd), d.imm); break;
        case Op::kAuipc:
          mov(rax, qword[rdi + m_o.pc]);
          mov(rcx, here + static_cast<int64_t>(d.imm));
          add(rax, rcx);
          mov(x(d.rd), rax);
          break;
        case Op::kLb: case Op::kLh: case Op::kLw: case Op::kLd: case Op::kLbu: case Op::kLhu: case Op::kLwu:
        case Op::kSb: case Op::kSh: case Op::kSw: case Op::kSd:
          misses.emplace_back();
          misses.back().second = i;
          access(it.op, d, misses.back().first);
          break;
        case Op::kJal:
          mov(rax, qword[rdi + m_o.pc]);
          add(rax, static_cast<int32_t>(next));
          mov(x(d.rd), rax);
          chain(i + 1, here + d.imm);
          break;
        case Op::kJalr: jalr(i + 1, d, next); break;
        case Op::kBeq: case Op::kBne: case Op::kBlt: case Op::kBge: case Op::kBltu: case Op::kBgeu: {
          Xbyak::Label taken;
          mov(rax, x(d.rs1));
          cmp(rax, x(d.rs2));
          switch (it.op) {
            case Op::kBeq: je(taken, T_NEAR); break;
            case Op::kBne: jne(taken, T_NEAR); break;
            case Op::kBlt: jl(taken, T_NEAR); break;
            case Op::kBge: jge(taken, T_NEAR); break;
            case Op::kBltu: jb(taken, T_NEAR); break;
            default: jae(taken, T_NEAR); break;
          }
          chain(i + 1, next);
          L(taken);
          chain(i + 1, here + d.imm);
          break;
        }
        case Op::kNone: break;
      }
      if (ends_block(it.op)) break;
    }
    if (i == n) {
      // Ran off the end of the translatable run: go on at the next instruction.
      const Item& last = items[n - 1];
      chain(n, static_cast<int64_t>(last.offset) + last.d.len() - static_cast<int64_t>(m_start));
    }
    for (auto& [label, index] : misses) {
      L(label);
      if (index == 0) {
        mov(eax, 1);  // nothing ran: the interpreter does this instruction
        ret();
      } else {
        leave_block(index, static_cast<int64_t>(items[index].offset) - static_cast<int64_t>(m_start));
      }
    }
  }

 private:
  const Xbyak::Address& x(unsigned r) const { return m_x[r]; }
  const Xbyak::Address& x32(unsigned r) const { return m_x32[r]; }

  // rd = f(rs1, ...) on 64 bits: rax holds rs1 on entry to `body` and the result after.
  template <typename F>
  void rr(F body, const DecodedInsn& d) {
    mov(rax, x(d.rs1));
    body();
    mov(x(d.rd), rax);
  }
  // The same on 32 bits, result sign-extended (the *W instructions).
  template <typename F>
  void rr_w(F body, const DecodedInsn& d) {
    mov(eax, x32(d.rs1));
    body();
    movsxd(rax, eax);
    mov(x(d.rd), rax);
  }

  // A load or store through the data TLB (Hart::load/store fast path); anything else jumps
  // to `miss`, where the block ends before this instruction.
  void access(Op op, const DecodedInsn& d, Xbyak::Label& miss) {
    const bool is_store = op >= Op::kSb;
    unsigned size = 8;
    switch (op) {
      case Op::kLb: case Op::kLbu: case Op::kSb: size = 1; break;
      case Op::kLh: case Op::kLhu: case Op::kSh: size = 2; break;
      case Op::kLw: case Op::kLwu: case Op::kSw: size = 4; break;
      default: break;
    }
    mov(rax, x(d.rs1));
    if (d.imm != 0) add(rax, d.imm);
    mov(rcx, rax);
    shr(rcx, kPageShift);
    mov(edx, ecx);
    and_(edx, 255);  // Hart::kTlbSize - 1
    shl(edx, 4);     // sizeof(TlbEntry)
    add(rdx, qword[rdi + (is_store ? m_o.dtlb_write : m_o.dtlb_read)]);
    cmp(rcx, qword[rdx]);
    jne(miss, T_NEAR);
    mov(ecx, eax);
    and_(ecx, static_cast<uint32_t>(kPageMask));
    cmp(ecx, static_cast<uint32_t>(kPageSize - size));
    ja(miss, T_NEAR);
    add(rax, qword[rdx + 8]);
    if (is_store) {
      mov(rcx, x(d.rs2));
      switch (size) {
        case 1: mov(byte[rax], cl); break;
        case 2: mov(word[rax], cx); break;
        case 4: mov(dword[rax], ecx); break;
        default: mov(qword[rax], rcx); break;
      }
      return;
    }
    switch (op) {
      case Op::kLb: movsx(rax, byte[rax]); break;
      case Op::kLbu: movzx(eax, byte[rax]); break;
      case Op::kLh: movsx(rax, word[rax]); break;
      case Op::kLhu: movzx(eax, word[rax]); break;
      case Op::kLw: movsxd(rax, dword[rax]); break;
      case Op::kLwu: mov(eax, dword[rax]); break;
      default: mov(rax, qword[rax]); break;
    }
    mov(x(d.rd), rax);
  }

  // Leaves with `done` instructions retired and pc advanced by `delta` from the entry.
  void leave_block(size_t done, int64_t delta) {
    if (delta != 0) add(qword[rdi + m_o.pc], static_cast<int32_t>(delta));
    sub(qword[rdi + m_o.budget], static_cast<int32_t>(done));
    xor_(eax, eax);
    ret();
  }

  // Jumps into the block at slot `slot_reg` (rax = slot address) if that slot is a block
  // entry; otherwise returns to the interpreter. Budget and pc are already updated.
  void enter_slot_or_return() {
    Xbyak::Label back;
    mov(rcx, m_entry_fn);
    cmp(qword[rax], rcx);
    jne(back, T_NEAR);
    movsxd(rcx, dword[rax + static_cast<int32_t>(offsetof(DecodedInsn, imm))]);
    mov(rdx, reinterpret_cast<uint64_t>(m_rx));
    add(rcx, rdx);
    jmp(rcx);
    L(back);
    xor_(eax, eax);
    ret();
  }

  // Leaves like leave_block, but goes straight on into the target's block when the target
  // is in this page, is a block entry, and budget remains.
  void chain(size_t done, int64_t delta) {
    const int64_t target = static_cast<int64_t>(m_start) + delta;
    if (target < 0 || target >= static_cast<int64_t>(kPageSize) || (target & 1) != 0) {
      leave_block(done, delta);
      return;
    }
    Xbyak::Label out;
    if (delta != 0) add(qword[rdi + m_o.pc], static_cast<int32_t>(delta));
    sub(qword[rdi + m_o.budget], static_cast<int32_t>(done));
    jle(out, T_NEAR);
    mov(rax, reinterpret_cast<uint64_t>(&m_slots[target >> 1]));
    enter_slot_or_return();
    L(out);
    xor_(eax, eax);
    ret();
  }

  // JALR: target known only now; chains when it lies in this page.
  void jalr(size_t done, const DecodedInsn& d, int64_t next) {
    Xbyak::Label out;
    mov(rax, x(d.rs1));
    if (d.imm != 0) add(rax, d.imm);
    and_(rax, -2);
    mov(rcx, qword[rdi + m_o.pc]);
    lea(rdx, ptr[rcx + static_cast<int32_t>(next)]);
    mov(x(d.rd), rdx);  // after reading rs1 (rd may be rs1)
    mov(qword[rdi + m_o.pc], rax);
    sub(qword[rdi + m_o.budget], static_cast<int32_t>(done));
    jle(out, T_NEAR);
    xor_(rcx, rax);
    shr(rcx, kPageShift);
    jnz(out, T_NEAR);
    and_(eax, static_cast<uint32_t>(kPageMask));
    shl(eax, 3);  // byte offset / 2 * sizeof(DecodedInsn)
    mov(rdx, reinterpret_cast<uint64_t>(m_slots));
    add(rax, rdx);
    enter_slot_or_return();
    L(out);
    xor_(eax, eax);
    ret();
  }

  Jit::Offsets m_o;
  const uint8_t* m_rx;
  uint64_t m_entry_fn;
  std::vector<Xbyak::Address> m_x, m_x32;
  uint64_t m_start = 0;
  DecodedInsn* m_slots = nullptr;
};

static_assert(sizeof(DecodedInsn) == 16, "jalr's slot arithmetic assumes 16-byte slots");

Jit::Jit(const JitPool::Chunk& chunk, const Offsets& offsets)
    : m_chunk(chunk),
      m_emitter(std::make_unique<Emitter>(chunk.rw, chunk.size, offsets, chunk.rx,
                                          reinterpret_cast<uint64_t>(&Hart::jit_entry))) {}

Jit::~Jit() {
  m_emitter.reset();
  JitPool::instance().release(m_chunk);
}

void Jit::reset() {
  m_emitter->reset();
  m_full = false;
  m_resets.fetch_add(1, std::memory_order_relaxed);
}

size_t Jit::bytes_used() const { return m_emitter->getSize(); }

int32_t Jit::translate(const uint8_t* page_host, unsigned offset, DecodedInsn* slots, unsigned& end) {
  constexpr size_t kWorstBlockBytes = 16 << 10;  // 64 instructions at well under 256 bytes each
  if (m_full || m_chunk.size - m_emitter->getSize() < kWorstBlockBytes) {
    m_full = true;
    return -1;
  }
  Item items[kMaxBlockInsns];
  size_t n = 0;
  for (unsigned off = offset; n < kMaxBlockInsns && off < kPageSize;) {
    uint16_t lo;
    std::memcpy(&lo, page_host + off, 2);
    const bool compressed = (lo & 3) != 3;
    uint32_t raw = lo;
    if (!compressed) {
      if (off > kPageSize - 4) break;  // straddles the page: the interpreter's case
      std::memcpy(&raw, page_host + off, 4);
    }
    Item& it = items[n];
    decode(raw, compressed, it.d);
    it.op = op_for(it.d.fn);
    if (it.op == Op::kNone) break;
    it.offset = off;
    ++n;
    off += it.d.len();
    if (ends_block(it.op)) break;
  }
  if (n == 0) return -1;
  end = items[n - 1].offset + items[n - 1].d.len();
  try {
    const size_t at = m_emitter->getSize();
    m_emitter->emit(items, n, offset, slots);
    while (m_emitter->getSize() % 16 != 0) m_emitter->int3();  // blocks start 16-byte aligned
    m_blocks.fetch_add(1, std::memory_order_relaxed);
    return static_cast<int32_t>(at);
  } catch (const Xbyak::Error&) {
    m_full = true;  // only "code too big" can happen here
    return -1;
  }
}

}  // namespace vigil::riscv
