global using Linq2DbTestKit.Internal;
global using NUnit.Framework;
