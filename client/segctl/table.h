// File: client/segctl/table.h — plain-text tables for segctl's listings: columns sized to
// their content, and wide tables wrapped into blocks that fit the terminal.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace segserve::segctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  // Numbers read better right-aligned.
  void AlignRight(size_t column);
  void AddRow(std::vector<std::string> row);
  size_t rows() const { return rows_.size(); }

  // Every column as wide as its widest cell, two spaces apart; no trailing spaces.
  void Print(std::ostream& out) const;
  // As Print when the table fits `width`; otherwise the first `key_columns` columns are
  // repeated in front of as many of the others as fit, block after block.
  void PrintWrapped(std::ostream& out, size_t width, size_t key_columns) const;

 private:
  void PrintColumns(std::ostream& out, const std::vector<size_t>& columns) const;
  std::vector<size_t> Widths() const;

  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;
};

// $COLUMNS when set to a number >= 40, else the terminal's width, else 100.
size_t TerminalWidth();

// Orders names the way people read them: digit runs compare as numbers, so
// "brightness:2" < "brightness:10".
bool NaturalLess(const std::string& a, const std::string& b);

// "0.8125" — metrics and IoUs with 4 decimals.
std::string FormatMetric(double value);

}  // namespace segserve::segctl
