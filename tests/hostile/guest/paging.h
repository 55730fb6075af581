/* Sv39/Sv48 page-table helpers for the paging cases. The code and data stay reachable
 * through an identity gigapage for 0x80000000-0xbfffffff (root[2]). */
#pragma once
#include "rt.h"

#define PTE_V 1ul
#define PTE_R 2ul
#define PTE_W 4ul
#define PTE_X 8ul
#define PTE_U 16ul
#define PTE_A 64ul
#define PTE_D 128ul
#define PTE_RWX (PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)

#define SATP_SV39 (8ul << 60)
#define SATP_SV48 (9ul << 60)

static u64 root[512] __attribute__((aligned(4096)));

static inline u64 pte_table(const void* table) { return (((u64)table >> 12) << 10) | PTE_V; }
static inline u64 pte_leaf(u64 pa, u64 flags) { return ((pa >> 12) << 10) | flags | PTE_V; }

static void paging_on(u64 mode) {
  root[2] = pte_leaf(0x80000000ul, PTE_RWX);
  __asm__ volatile("sfence.vma" ::: "memory");
  csr_write(satp, mode | ((u64)root >> 12));
  __asm__ volatile("sfence.vma" ::: "memory");
}

static void paging_off(void) {
  csr_write(satp, 0);
  __asm__ volatile("sfence.vma" ::: "memory");
}

static void remap(void) { __asm__ volatile("sfence.vma" ::: "memory"); }
