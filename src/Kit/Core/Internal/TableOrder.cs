namespace Linq2DbTestKit.Internal;

/// <summary>The order in which a reset deletes and restores tables, by their foreign keys.</summary>
internal static class TableOrder
{
    /// <summary>
    /// A level for each table such that a table referenced by another has a lower level: restore by ascending level,
    /// delete by descending. A table that refers to itself is its own business (one statement deletes or restores it);
    /// tables in a cycle share the level after the rest, and the reset fails if their foreign keys refuse that order.
    /// </summary>
    public static IReadOnlyDictionary<long, int> Levels(IEnumerable<long> tables, IEnumerable<(long Child, long Parent)> foreignKeys)
    {
        var parents = tables.ToDictionary(t => t, _ => new HashSet<long>());
        foreach (var (child, parent) in foreignKeys)
        {
            if (child != parent && parents.ContainsKey(child) && parents.ContainsKey(parent))
                parents[child].Add(parent);
        }

        var levels = new Dictionary<long, int>();
        var remaining = new HashSet<long>(parents.Keys);
        for (var level = 0; remaining.Count > 0; level++)
        {
            var ready = remaining.Where(t => parents[t].All(levels.ContainsKey)).ToList();
            if (ready.Count == 0)
            {
                foreach (var table in remaining)
                    levels[table] = level;
                break;
            }

            foreach (var table in ready)
            {
                levels[table] = level;
                remaining.Remove(table);
            }
        }

        return levels;
    }
}
