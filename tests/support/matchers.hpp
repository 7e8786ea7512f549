// Catch2 matchers for an exception's message, to use with CHECK_THROWS_MATCHES
// so one check asserts both the exception type and what it says.
#pragma once

#include <catch2/catch.hpp>

#include <exception>
#include <string>

namespace annulus::testing {

class message_matcher : public Catch::MatcherBase<std::exception> {
 public:
  message_matcher(std::string text, bool whole) : text_(std::move(text)), whole_(whole) {}
  bool match(const std::exception& e) const override {
    const std::string what = e.what();
    return whole_ ? what == text_ : what.find(text_) != std::string::npos;
  }
  std::string describe() const override {
    return (whole_ ? "has the message \"" : "has a message containing \"") + text_ + "\"";
  }

 private:
  std::string text_;
  bool whole_;
};

inline message_matcher message_has(std::string text) { return {std::move(text), false}; }
inline message_matcher message_is(std::string text) { return {std::move(text), true}; }

}  // namespace annulus::testing
