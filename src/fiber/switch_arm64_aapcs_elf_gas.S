/*
 * Fiber context switch for AArch64, AAPCS64, ELF, GNU as.
 *
 *   bool  blz__ctx_switch(void **save_sp, void *new_sp, bool value);
 *   void *blz__ctx_init(void *stack_top, void (*fn)(void *), void *arg);
 *
 * A switched-out context is nothing but its stack pointer: blz__ctx_switch
 * stores the callee-saved state on the current stack, stores sp in *save_sp,
 * loads new_sp and reloads the other context's state from the same layout.
 * The AAPCS64 callee-saved set is x19-x28, the frame pointer x29, the link
 * register x30 (it holds our return address) and the low 64 bits of v8-v15
 * (d8-d15); everything else is dead across a call.
 *
 * `value` travels with the switch: the other context's blz__ctx_switch call
 * returns it (as 0 or 1). fiber.c passes "the fiber is finished" that way, so
 * that blz__fiber_resume and blz__fiber_suspend can end in a tail call to the
 * switch, and the switch returns straight into their callers.
 *
 * The frame of a switched-out context (176 bytes, sp stays 16-byte aligned):
 *
 *            +---------------------+
 *    +168    | 0 (padding)         |
 *    +160    | FPCR                |  a fresh context: 0
 *    +152    | d15                 |
 *     ...    | ...                 |
 *     +96    | d8                  |
 *     +88    | x30 (lr)            |  where the switch returns; a fresh context: blz__ctx_start
 *     +80    | x29 (fp)            |  a fresh context: 0 (ends frame chains)
 *     +72    | x28                 |
 *     ...    | ...                 |
 *      +8    | x20                 |  a fresh context: arg
 *      +0    | x19                 |  a fresh context: fn
 *            +---------------------+  <- the saved sp (*save_sp, new_sp)
 *
 * FPCR (rounding mode, flush-to-zero, default-NaN) is per context: a fiber that
 * changes its rounding mode does not leak it into the thread that resumes it.
 * Writing FPCR can be slow, so the switch writes it only when the two contexts
 * differ. FPSR (the cumulative exception flags) is not saved: like MXCSR's
 * status bits on x86-64 it is not preserved across calls.
 *
 * blz__ctx_init builds that frame below stack_top (rounded down to 16 bytes,
 * call it T) so that the first switch to it returns into blz__ctx_start with
 * sp = T, which calls fn(arg). fn must never return (blz__ctx_start traps with
 * brk if it does).
 *
 * The CFI in blz__ctx_switch describes its frame, which has the same shape on
 * both stacks, so a debugger can unwind through a suspended switch.
 *
 * BTI: the entry points begin with `bti c` (spelled `hint #34`, a no-op on
 * cores without BTI, so any assembler takes it); the object is marked BTI-
 * compatible when the compiler builds with -mbranch-protection=bti/standard.
 */

    .text

    .globl  blz__ctx_switch
    .hidden blz__ctx_switch
    .type   blz__ctx_switch, %function
    .p2align 4
blz__ctx_switch:
    .cfi_startproc
    hint    #34                     /* bti c */
    sub     sp, sp, #176
    .cfi_adjust_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    .cfi_rel_offset x19, 0
    .cfi_rel_offset x20, 8
    .cfi_rel_offset x21, 16
    .cfi_rel_offset x22, 24
    .cfi_rel_offset x23, 32
    .cfi_rel_offset x24, 40
    .cfi_rel_offset x25, 48
    .cfi_rel_offset x26, 56
    .cfi_rel_offset x27, 64
    .cfi_rel_offset x28, 72
    .cfi_rel_offset x29, 80
    .cfi_rel_offset x30, 88
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr                /* this context's FPCR, kept for the compare */
    stp     x9, xzr, [sp, #160]

    mov     x10, sp
    str     x10, [x0]               /* *save_sp = sp: this context is now switched out */
    mov     sp, x1                  /* ...and from here on we run the other one */

    ldr     x10, [sp, #160]
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10               /* only when the two contexts differ */
1:
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    and     w0, w2, #0xff           /* value: what the other side's call returns */
    add     sp, sp, #176
    .cfi_adjust_cfa_offset -176
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size   blz__ctx_switch, .-blz__ctx_switch


    .globl  blz__ctx_init
    .hidden blz__ctx_init
    .type   blz__ctx_init, %function
    .p2align 4
blz__ctx_init:
    .cfi_startproc
    hint    #34                     /* bti c */
    and     x0, x0, #~15            /* T */
    sub     x0, x0, #176            /* the frame; blz__ctx_start will run with sp = T */
    stp     x1, x2, [x0, #0]        /* x19 = fn, x20 = arg */
    stp     xzr, xzr, [x0, #16]     /* x21, x22 */
    stp     xzr, xzr, [x0, #32]     /* x23, x24 */
    stp     xzr, xzr, [x0, #48]     /* x25, x26 */
    stp     xzr, xzr, [x0, #64]     /* x27, x28 */
    adr     x9, blz__ctx_start
    stp     xzr, x9, [x0, #80]      /* x29 = 0, x30 = blz__ctx_start */
    stp     xzr, xzr, [x0, #96]     /* d8, d9 */
    stp     xzr, xzr, [x0, #112]    /* d10, d11 */
    stp     xzr, xzr, [x0, #128]    /* d12, d13 */
    stp     xzr, xzr, [x0, #144]    /* d14, d15 */
    stp     xzr, xzr, [x0, #160]    /* FPCR = 0 (the AAPCS64 default), padding */
    ret
    .cfi_endproc
    .size   blz__ctx_init, .-blz__ctx_init


    /*
     * The first instruction a fresh context runs, entered by blz__ctx_switch's
     * ret with sp 16-byte aligned. It has no caller: the undefined return
     * address tells unwinders and debuggers that the fiber's stack ends here.
     */
    .type   blz__ctx_start, %function
    .p2align 4
blz__ctx_start:
    .cfi_startproc
    .cfi_undefined x30
    hint    #34                     /* bti c */
    mov     x0, x20
    blr     x19
    brk     #0x1                    /* fn returned: there is nowhere to go */
    .cfi_endproc
    .size   blz__ctx_start, .-blz__ctx_start


    .section .note.GNU-stack,"",%progbits

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
    /* GNU property note: this object is BTI-compatible. */
    .section .note.gnu.property,"a"
    .p2align 3
    .long   4                       /* n_namesz: "GNU\0" */
    .long   16                      /* n_descsz */
    .long   5                       /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4                       /* pr_datasz */
    .long   1                       /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .p2align 3
#endif
