// "key = value" configuration text (vtpm-setup.conf, bridge.conf): lines
// of one key and its value, blank lines and lines starting with '#' skipped,
// white space around keys and values trimmed. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vtpm/result.hpp"

namespace vtpm {

struct KeyValue {
    int line = 0;  // 1-based, for messages
    std::string key, value;
};

/// The lines of `text`; an error "<source>:<line>: expected 'key = value'"
/// for a line without '='.
Result<std::vector<KeyValue>> parse_key_values(std::string_view text, std::string_view source);

/// `s` without leading and trailing blanks, tabs and carriage returns.
std::string trim(std::string_view s);

}  // namespace vtpm
