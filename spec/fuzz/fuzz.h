/* fuzz.h — what every libFuzzer target of spec/fuzz/ shares: the entry
 * points libFuzzer calls and a check that turns a broken property into a
 * crash, so libFuzzer saves the input that broke it.
 *
 * Targets are built and run by tools/fuzz.sh (docs/fuzzing.md); each one
 * must be deterministic (same input, same path) and free everything it
 * allocates, because leak detection is on. */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test, not an input check: when it does not
 * hold, say which one and abort (libFuzzer then writes crash-<sha1>). */
#define FUZZ_CHECK(cond)                                                           \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "fuzz: property broken at %s:%d: %s\n", __FILE__,      \
                    __LINE__, #cond);                                              \
            abort();                                                               \
        }                                                                          \
    } while (0)

#endif
