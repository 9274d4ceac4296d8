#include "util/key_value.hpp"

namespace vtpm {

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string_view::npos) return {};
    return std::string(s.substr(b, s.find_last_not_of(" \t\r") - b + 1));
}

Result<std::vector<KeyValue>> parse_key_values(std::string_view text, std::string_view source) {
    std::vector<KeyValue> out;
    int n = 0;
    for (size_t pos = 0; pos <= text.size();) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        const std::string line = trim(text.substr(pos, end - pos));
        pos = end + 1;
        ++n;
        if (line.empty() || line[0] == '#') continue;
        const auto eq = line.find('=');
        if (eq == std::string::npos)
            return make_error(rc::kFail, std::string(source) + ":" + std::to_string(n) + ": expected 'key = value'");
        std::string key = trim(std::string_view(line).substr(0, eq));
        if (key.empty())
            return make_error(rc::kFail, std::string(source) + ":" + std::to_string(n) + ": no key before '='");
        out.push_back({n, std::move(key), trim(std::string_view(line).substr(eq + 1))});
    }
    return out;
}

}  // namespace vtpm
