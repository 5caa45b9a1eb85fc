/* Nothing to compile: the target exists to give Swift the declaration in include/CFuzzerDriver.h. */
#include "CFuzzerDriver.h"
