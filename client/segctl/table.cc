#include "client/segctl/table.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace segserve::segctl {

void Table::AlignRight(size_t column) {
  if (right_.size() <= column) right_.resize(column + 1, false);
  right_[column] = true;
}

void Table::AddRow(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

std::vector<size_t> Table::Widths() const {
  std::vector<size_t> widths(header_.size(), 0);
  for (size_t c = 0; c < header_.size(); ++c) {
    widths[c] = header_[c].size();
    for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
  }
  return widths;
}

void Table::PrintColumns(std::ostream& out, const std::vector<size_t>& columns) const {
  const std::vector<size_t> widths = Widths();
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < columns.size(); ++i) {
      const size_t c = columns[i];
      const std::string& cell = cells[c];
      const std::string pad(widths[c] - cell.size(), ' ');
      if (i > 0) line += "  ";
      const bool right = c < right_.size() && right_[c];
      line += right ? pad + cell : cell + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  print_row(header_);
  for (const auto& row : rows_) print_row(row);
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> all(header_.size());
  for (size_t c = 0; c < all.size(); ++c) all[c] = c;
  PrintColumns(out, all);
}

void Table::PrintWrapped(std::ostream& out, size_t width, size_t key_columns) const {
  const std::vector<size_t> widths = Widths();
  key_columns = std::min(key_columns, header_.size());
  size_t key_width = 0;
  for (size_t c = 0; c < key_columns; ++c) key_width += widths[c] + 2;
  size_t total = key_width;
  for (size_t c = key_columns; c < header_.size(); ++c) total += widths[c] + 2;
  if (total <= width + 2 || key_columns == header_.size()) {
    Print(out);
    return;
  }
  size_t c = key_columns;
  bool first = true;
  while (c < header_.size()) {
    std::vector<size_t> block;
    for (size_t k = 0; k < key_columns; ++k) block.push_back(k);
    size_t used = key_width;
    // At least one column per block, however narrow the terminal.
    do {
      block.push_back(c);
      used += widths[c] + 2;
      ++c;
    } while (c < header_.size() && used + widths[c] <= width);
    if (!first) out << "\n";
    first = false;
    PrintColumns(out, block);
  }
}

size_t TerminalWidth() {
  const char* columns = std::getenv("COLUMNS");
  size_t width = 0;
  if (columns != nullptr && absl::SimpleAtoi(columns, &width) && width >= 40) return width;
  // Shells rarely export COLUMNS; ask the terminal.
  winsize size{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col >= 40) {
    return size.ws_col;
  }
  return 100;
}

bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      size_t i_end = i, j_end = j;
      while (i_end < a.size() && is_digit(a[i_end])) ++i_end;
      while (j_end < b.size() && is_digit(b[j_end])) ++j_end;
      // Compare without leading zeros: longer digit runs are larger numbers.
      size_t i_start = i, j_start = j;
      while (i_start + 1 < i_end && a[i_start] == '0') ++i_start;
      while (j_start + 1 < j_end && b[j_start] == '0') ++j_start;
      if (i_end - i_start != j_end - j_start) return i_end - i_start < j_end - j_start;
      const int order = a.compare(i_start, i_end - i_start, b, j_start, j_end - j_start);
      if (order != 0) return order < 0;
      i = i_end;
      j = j_end;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

std::string FormatMetric(double value) { return absl::StrFormat("%.4f", value); }

}  // namespace segserve::segctl
