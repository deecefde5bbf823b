#pragma once
// A minimal JSON writer for hubble's logs (metrics.json, metrics.jsonl): objects and arrays
// built up as text, strings escaped, numbers written round-trippable. Not a parser.
//   json::Object o;  o.add("epoch", 3).add("loss", 0.25).add("name", "paper");
//   o.str()  ->  {"epoch": 3, "loss": 0.25, "name": "paper"}
// Non-finite numbers (NaN, inf) have no JSON spelling; they are written as null.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace hubble::json {

inline std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same double (%.17g trimmed by trying fewer digits).
inline std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}
inline std::string number(long long v) { return std::to_string(v); }

// A JSON value already rendered as text (an object, an array, a number).
struct Raw {
  std::string text;
};

inline std::string render(const Raw& r) { return r.text; }
inline std::string render(const std::string& s) { return quote(s); }
inline std::string render(const char* s) { return quote(s); }
inline std::string render(bool b) { return b ? "true" : "false"; }
inline std::string render(double v) { return number(v); }
inline std::string render(float v) { return number(double(v)); }
inline std::string render(int v) { return number(static_cast<long long>(v)); }
inline std::string render(long v) { return number(static_cast<long long>(v)); }
inline std::string render(long long v) { return number(v); }
inline std::string render(unsigned v) { return number(static_cast<long long>(v)); }
inline std::string render(unsigned long v) { return number(static_cast<long long>(v)); }
template <class T>
std::string render(const std::vector<T>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += render(v[i]);
  }
  return s + "]";
}

class Object {
 public:
  template <class V>
  Object& add(const std::string& key, const V& value) {
    if (!body_.empty()) body_ += ", ";
    body_ += quote(key);
    body_ += ": ";
    body_ += render(value);
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }
  operator Raw() const { return {str()}; }

 private:
  std::string body_;
};

inline std::string render(const Object& o) { return o.str(); }

}  // namespace hubble::json
