// Whether this file is compiled under AddressSanitizer or ThreadSanitizer:
// g++ says so with __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang only
// through __has_feature. Tests that cannot run under one (an address-space
// limit breaks the shadow memory) or that shorten themselves there ask here.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ANNULUS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ANNULUS_TEST_SANITIZED 1
#endif
#endif
#ifndef ANNULUS_TEST_SANITIZED
#define ANNULUS_TEST_SANITIZED 0
#endif
