# Random int8 weights / int64 biases / int16 inputs for the three bench shapes (header).
import random
random.seed(5)
shapes = [(9, 32), (9, 64), (32, 128)]
out = ["#include <stdint.h>"]
for (i, h) in shapes:
    for g in ["f", "i", "c", "o"]:
        for kind, cols in [("x", i), ("h", h)]:
            w = [max(-127, min(127, int(random.gauss(0, 40)))) for _ in range(h * cols)]
            out.append(f"static const int8_t w_{g}{kind}_{i}_{h}[{h*cols}] = {{{','.join(map(str, w))}}};")
        b = [random.randint(-20000, 20000) for _ in range(h)]
        out.append(f"static const int64_t b_{g}_{i}_{h}[{h}] = {{{','.join(map(str, b))}}};")
    x = [max(-32768, min(32767, int(random.gauss(0, 4096)))) for _ in range(65 * i)]
    out.append(f"static const int16_t x_{i}_{h}[{65*i}] = {{{','.join(map(str, x))}}};")
open("data.h", "w").write("\n".join(out) + "\n")
