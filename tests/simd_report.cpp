// Prints which kernels run and how they were chosen (the matrix tests match it).
#include <cstdio>

#include "annulus/core/kernels.hpp"

int main() { std::puts(annulus::kernels::simd_target().describe().c_str()); }
