// FUZZ_CHECK: an invariant of a fuzz target; a violation traps, so libFuzzer keeps the input.
#pragma once

#define FUZZ_CHECK(cond)      \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)
