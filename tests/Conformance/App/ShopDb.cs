using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Mapping;

namespace Linq2DbTestKit.Conformance.App;

/// <summary>The application's own context, as an application would write it: the kit never sees its source.</summary>
public sealed class ShopDb : DataConnection
{
    public ShopDb(DataOptions options)
        : base(options)
    {
    }

    public ShopDb(DataOptions<ShopDb> options)
        : base(options.Options)
    {
    }

    public ITable<Item> Items => this.GetTable<Item>();

    public ITable<ItemNote> Notes => this.GetTable<ItemNote>();

    public ITable<Colour> Colours => this.GetTable<Colour>();

    public ITable<Shade> Shades => this.GetTable<Shade>();
}

[Table("items")]
public sealed class Item
{
    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("name"), NotNull]
    public required string Name { get; set; }

    [Column("quantity")]
    public int Quantity { get; set; }

    [Association(ThisKey = nameof(Id), OtherKey = nameof(ItemNote.ItemId))]
    public List<ItemNote> Notes { get; set; } = [];
}

[Table("item_notes")]
public sealed class ItemNote
{
    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("item_id")]
    public long ItemId { get; set; }

    [Column("text"), NotNull]
    public required string Text { get; set; }
}

/// <summary>Seed data: three colours, committed by the run's set-up.</summary>
[Table("colours")]
public sealed class Colour
{
    [Column("id"), PrimaryKey, Identity]
    public int Id { get; set; }

    [Column("name"), NotNull]
    public required string Name { get; set; }
}

[Table("shades")]
public sealed class Shade
{
    [Column("id"), PrimaryKey, Identity]
    public int Id { get; set; }

    [Column("colour_id")]
    public int ColourId { get; set; }

    [Column("name"), NotNull]
    public required string Name { get; set; }
}
