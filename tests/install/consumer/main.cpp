// A program that knows ringfetch only through its installed package: reads two ranges of a file it writes.
#include <ringfetch/ringfetch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  std::ofstream(dir + "/blob", std::ios::binary) << "0123456789abcdefghijklmnopqrstuvwxyz";
  ringfetch::Engine engine({.threads = 1, .arena_bytes = 4 << 20});
  ringfetch::Store store = ringfetch::Store::open("file://" + dir, engine);
  ringfetch::Plan plan;
  plan.add("blob", 10, 6);
  plan.add("blob", 30, 3);
  std::string got;
  for (const ringfetch::ItemView& item : store.fetch(plan))
    got.append(reinterpret_cast<const char*>(item.bytes().data()), item.size());
  std::printf("%s\n", got.c_str());
  return got == "abcdefuvw" ? 0 : 1;
}
