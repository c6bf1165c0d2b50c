// segctl: the command-line client of segserve (the command tree is in cli.cc).
#include <iostream>
#include <string>
#include <vector>

#include "client/segctl/cli.h"

int main(int argc, char** argv) {
  return segserve::segctl::RunSegctl(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                     std::cerr);
}
