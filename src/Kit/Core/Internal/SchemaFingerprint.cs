using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Linq2DbTestKit.Internal;

/// <summary>A digest of what a run's set-up applies, for <see cref="TestDatabaseOptions.SchemaFingerprint"/>.</summary>
internal static class SchemaFingerprint
{
    /// <summary>
    /// The digest of <paramref name="inputs"/>: an <see cref="Assembly"/> (or a <see cref="Type"/>, for its assembly) by
    /// its module version id, which a compiler makes anew whenever the assembly's code or embedded resources change; a
    /// <see cref="FileInfo"/> or <see cref="DirectoryInfo"/> by the contents of its files (migration scripts read from
    /// disk); anything else by its text.
    /// </summary>
    public static string Compute(DatabaseProvider provider, IEnumerable<object?> inputs)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Add(hash, $"provider {provider.Name}");
        foreach (var input in inputs)
        {
            switch (input)
            {
                case null:
                    break;
                case Assembly assembly:
                    Add(hash, $"assembly {assembly.GetName().Name} {assembly.ManifestModule.ModuleVersionId:N}");
                    break;
                case Type type:
                    Add(hash, $"assembly {type.Assembly.GetName().Name} {type.Assembly.ManifestModule.ModuleVersionId:N}");
                    break;
                case FileInfo file:
                    AddFile(hash, file, file.Name);
                    break;
                case DirectoryInfo directory:
                    foreach (var file in directory.EnumerateFiles("*", SearchOption.AllDirectories).OrderBy(f => f.FullName, StringComparer.Ordinal))
                        AddFile(hash, file, Path.GetRelativePath(directory.FullName, file.FullName));
                    break;
                default:
                    Add(hash, $"{input.GetType().FullName} {input}");
                    break;
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    static void AddFile(IncrementalHash hash, FileInfo file, string name)
    {
        if (!file.Exists)
            throw new TestKitConfigurationException($"The schema's fingerprint names the file {file.FullName}, which does not exist. Correct the path in SchemaInputs.");
        Add(hash, $"file {name.Replace('\\', '/')} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file.FullName)))}");
    }

    static void Add(IncrementalHash hash, string text) => hash.AppendData(Encoding.UTF8.GetBytes(text + "\n"));
}
